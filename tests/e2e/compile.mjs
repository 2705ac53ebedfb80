// Compiles the contracts under contracts/ with the npm solc package (solc-js, no
// network). Used by the tests, and run directly to print the Token bytecode that
// `emc bench chain` embeds: `node compile.mjs Token`.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = path.dirname(fileURLToPath(import.meta.url));

export function compile(name) {
  const source = fs.readFileSync(path.join(here, "contracts", `${name}.sol`), "utf8");
  const input = {
    language: "Solidity",
    sources: { [`${name}.sol`]: { content: source } },
    settings: {
      evmVersion: "prague",
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const errors = (out.errors || []).filter((e) => e.severity === "error");
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  const c = out.contracts[`${name}.sol`][name];
  return { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(compile(process.argv[2] || "Token").bytecode + "\n");
}
