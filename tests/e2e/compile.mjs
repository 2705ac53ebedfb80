// Compiles the contracts under contracts/ with the npm solc package (solc-js, no
// network). Used by the tests, and run directly to print the Token bytecode that
// `emc bench chain` embeds: `node compile.mjs Token`.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import solc from "solc";

const here = path.dirname(fileURLToPath(import.meta.url));

// Imports such as "@openzeppelin/contracts/..." resolve to the npm packages.
function findImports(p) {
  try {
    return { contents: fs.readFileSync(path.join(here, "node_modules", p), "utf8") };
  } catch (e) {
    return { error: `cannot import ${p}: ${e.message}` };
  }
}

// Compiles contract `name` from contracts/<file>.sol (file defaults to the name).
export function compile(name, file = name) {
  const source = fs.readFileSync(path.join(here, "contracts", `${file}.sol`), "utf8");
  const input = {
    language: "Solidity",
    sources: { [`${file}.sol`]: { content: source } },
    settings: {
      evmVersion: "prague",
      optimizer: { enabled: true, runs: 200 },
      outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } },
    },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (out.errors || []).filter((e) => e.severity === "error");
  if (errors.length) throw new Error(errors.map((e) => e.formattedMessage).join("\n"));
  const c = out.contracts[`${file}.sol`][name];
  return { abi: c.abi, bytecode: "0x" + c.evm.bytecode.object };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  process.stdout.write(compile(process.argv[2] || "Token").bytecode + "\n");
}
