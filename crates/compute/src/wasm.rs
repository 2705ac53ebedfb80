//! The `wasm` runtime: a WebAssembly job run by wasmtime, fuel-metered and
//! memory-capped, with no imports at all, so a run depends on nothing but the module
//! and its input: anyone can re-run it and get the same bytes and the same fuel.
//!
//! A job exports `memory`, `alloc(len) -> ptr` (where the host writes the input) and
//! `run(ptr, len) -> i64`, which returns `(output pointer << 32) | output length`.
//! `crates/compute/jobs/` holds jobs written in WAT. Fuel is wasmtime's count of
//! executed operators, identical on every run; a job that exhausts its fuel limit
//! stops with "out of fuel", one that grows memory past the cap traps.

use crate::runtime::{Call, Reply, Runtime, MAX_RESULT_BYTES};
use emc_protocol::CallError;
use emc_protocol::Unit;
use std::path::Path;
use wasmtime::{Config, Engine, Instance, Module, Store, StoreLimits, StoreLimitsBuilder, Trap};

#[derive(Clone, Copy, Debug)]
pub struct WasmLimits {
    pub fuel: u64,
    pub memory_bytes: usize,
}

impl Default for WasmLimits {
    fn default() -> Self {
        Self {
            fuel: 2_000_000_000,
            memory_bytes: 64 << 20,
        }
    }
}

pub struct WasmRuntime {
    engine: Engine,
    module: Module,
    limits: WasmLimits,
    name: String,
}

/// What one run gave: the output, or why it stopped; fuel is counted either way.
#[derive(Debug, PartialEq, Eq)]
pub struct Run {
    pub output: Result<Vec<u8>, String>,
    pub fuel: u64,
}

impl WasmRuntime {
    /// Compiles a `.wasm` or `.wat` file.
    pub fn from_file(path: &Path, limits: WasmLimits) -> Result<Self, CallError> {
        let bytes = std::fs::read(path)
            .map_err(|e| CallError::Config(format!("wasm job {}: {e}", path.display())))?;
        Self::new(&bytes, limits, path.display().to_string())
    }

    pub fn new(bytes: &[u8], limits: WasmLimits, name: String) -> Result<Self, CallError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| CallError::Config(e.to_string()))?;
        let module = Module::new(&engine, bytes)
            .map_err(|e| CallError::Config(format!("wasm job {name}: {e}")))?;
        Ok(Self {
            engine,
            module,
            limits,
            name,
        })
    }

    /// Runs the job on `input` with at most `budget` fuel, or the job's own limit if
    /// lower (blocking; the runtime calls it on a blocking thread).
    pub fn run(&self, input: &[u8], budget: u64) -> Run {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.memory_bytes)
            .instances(1)
            .memories(1)
            .tables(1)
            .trap_on_grow_failure(true)
            .build();
        let mut store: Store<StoreLimits> = Store::new(&self.engine, limits);
        store.limiter(|l| l);
        let fuel = self.limits.fuel.min(budget);
        let why = if fuel < self.limits.fuel {
            "the call's budget"
        } else {
            "its limit"
        };
        if let Err(e) = store.set_fuel(fuel) {
            return Run {
                output: Err(e.to_string()),
                fuel: 0,
            };
        }
        let output = self.run_in(&mut store, input);
        let used = fuel - store.get_fuel().unwrap_or(0);
        Run {
            output: output.map_err(|e| {
                if e.downcast_ref::<Trap>() == Some(&Trap::OutOfFuel) {
                    format!("out of fuel: the job needs more than {why} of {fuel}")
                } else {
                    format!("{e:#}")
                }
            }),
            fuel: used,
        }
    }

    fn run_in(&self, store: &mut Store<StoreLimits>, input: &[u8]) -> wasmtime::Result<Vec<u8>> {
        let instance = Instance::new(&mut *store, &self.module, &[])?;
        let memory = instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| wasmtime::Error::msg("the job exports no `memory`"))?;
        let alloc = instance.get_typed_func::<i32, i32>(&mut *store, "alloc")?;
        let run = instance.get_typed_func::<(i32, i32), i64>(&mut *store, "run")?;
        let len =
            i32::try_from(input.len()).map_err(|_| wasmtime::Error::msg("input too large"))?;
        let ptr = alloc.call(&mut *store, len)?;
        memory.write(&mut *store, ptr as u32 as usize, input)?;
        let packed = run.call(&mut *store, (ptr, len))? as u64;
        let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
        if out_len as u64 > MAX_RESULT_BYTES {
            return Err(wasmtime::Error::msg(format!(
                "output of {out_len} bytes is over the limit"
            )));
        }
        let mut out = vec![0u8; out_len];
        memory.read(&*store, out_ptr, &mut out)?;
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Runtime for WasmRuntime {
    fn kind(&self) -> String {
        format!("wasm:{}", self.name)
    }

    fn deterministic(&self) -> bool {
        true
    }

    async fn call(&self, call: Call) -> Result<Reply, CallError> {
        // Compiled code is shared; each call gets its own store, so calls run in
        // parallel on blocking threads.
        let this = WasmRuntime {
            engine: self.engine.clone(),
            module: self.module.clone(),
            limits: self.limits,
            name: self.name.clone(),
        };
        let run = tokio::task::spawn_blocking(move || this.run(&call.body, call.max_units))
            .await
            .map_err(|e| CallError::Runtime(format!("wasm job panicked: {e}")))?;
        Ok(match run.output {
            Ok(out) => Reply::whole(200, "application/octet-stream", out, Unit::Fuel, run.fuel),
            Err(why) => Reply::error(422, "wasm_trap", &why, Unit::Fuel, run.fuel),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::UNLIMITED;

    fn job(name: &str, limits: WasmLimits) -> WasmRuntime {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("jobs")
            .join(name);
        WasmRuntime::from_file(&path, limits).expect("compiles")
    }

    #[test]
    fn a_job_runs_deterministically_within_its_fuel() {
        let rt = job("primes.wat", WasmLimits::default());
        let a = rt.run(b"10000", UNLIMITED);
        assert_eq!(a.output.as_deref(), Ok(b"1229".as_slice()));
        assert!(a.fuel > 100_000, "fuel counted: {}", a.fuel);
        let b = rt.run(b"10000", UNLIMITED);
        assert_eq!(a, b, "same output and the same fuel on every run");
        assert_eq!(
            rt.run(b"100000", UNLIMITED).output.as_deref(),
            Ok(b"9592".as_slice())
        );
    }

    #[test]
    fn a_job_over_its_fuel_limit_stops_and_is_charged_the_limit() {
        let limit = 1_000_000;
        let rt = job(
            "primes.wat",
            WasmLimits {
                fuel: limit,
                ..Default::default()
            },
        );
        let run = rt.run(b"10000000", UNLIMITED);
        let err = run.output.expect_err("runs out");
        assert!(err.contains("out of fuel"), "{err}");
        assert_eq!(run.fuel, limit);
        // A call's budget below the job's limit stops it at the budget, charged that.
        let run = rt.run(b"10000000", 250_000);
        let err = run.output.expect_err("runs out");
        assert!(err.contains("the call's budget of 250000"), "{err}");
        assert_eq!(run.fuel, 250_000);
    }

    #[test]
    fn memory_past_the_cap_traps() {
        let rt = job(
            "grow.wat",
            WasmLimits {
                memory_bytes: 4 << 20,
                ..Default::default()
            },
        );
        assert_eq!(
            rt.run(b"10", UNLIMITED).output.as_deref(),
            Ok(b"ok".as_slice())
        );
        let err = rt.run(b"100", UNLIMITED).output.expect_err("over 4 MiB");
        assert!(err.contains("memory") || err.contains("grow"), "{err}");
    }

    #[test]
    fn a_module_without_the_abi_is_refused_clearly() {
        let rt =
            WasmRuntime::new(b"(module)", WasmLimits::default(), "empty".into()).expect("compiles");
        let err = rt.run(b"", UNLIMITED).output.expect_err("no exports");
        assert!(err.contains("memory"), "{err}");
        assert!(WasmRuntime::new(b"not wasm", WasmLimits::default(), "x".into()).is_err());
    }
}
