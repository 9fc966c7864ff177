//! Device selection (`auto | cpu | cuda[:i]`), threads, seeding, and what libtorch is loaded.
use crate::display::Table;
use crate::error::{Error, Result};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A device as a user writes it. `Auto` is CUDA device 0 when CUDA is available, else the CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    #[default]
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(0)),
            _ => t
                .strip_prefix("cuda:")
                .and_then(|i| i.parse().ok())
                .map(DeviceSpec::Cuda)
                .ok_or_else(|| Error::InvalidDevice(s.to_string())),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl DeviceSpec {
    /// The concrete device. An explicit CUDA request on a machine without it is an error, not a silent CPU run.
    pub fn resolve(self) -> Result<tch::Device> {
        match self {
            DeviceSpec::Cpu => Ok(tch::Device::Cpu),
            DeviceSpec::Auto => Ok(if cuda_available() { tch::Device::Cuda(0) } else { tch::Device::Cpu }),
            DeviceSpec::Cuda(i) => {
                if !cuda_available() {
                    return Err(Error::DeviceUnavailable {
                        requested: self.to_string(),
                        reason: cuda_unavailable_reason(),
                    });
                }
                let n = tch::Cuda::device_count() as usize;
                if i >= n {
                    return Err(Error::DeviceUnavailable {
                        requested: self.to_string(),
                        reason: format!("this machine has {n} CUDA device(s) (cuda:0..cuda:{})", n.saturating_sub(1)),
                    });
                }
                Ok(tch::Device::Cuda(i))
            }
        }
    }
}

/// Parse and resolve in one step: `device("auto")?`.
pub fn device(spec: &str) -> Result<tch::Device> {
    spec.parse::<DeviceSpec>()?.resolve()
}

/// Whether CUDA can be used. Makes sure libtorch's CUDA half is loaded first (see [`preload_cuda`]).
pub fn cuda_available() -> bool {
    preload_cuda();
    tch::Cuda::is_available()
}

fn cuda_unavailable_reason() -> String {
    match loaded_libtorch_dir() {
        Some(dir) if !dir.join("libtorch_cuda.so").exists() => {
            format!("the loaded libtorch ({}) is a CPU-only build", dir.display())
        }
        Some(_) if !preload_cuda() => "libtorch_cuda.so exists but could not be loaded".to_string(),
        _ => "no CUDA device or driver is visible to libtorch".to_string(),
    }
}

/// The directory of the libtorch loaded into this process, read from `/proc/self/maps`.
pub fn loaded_libtorch_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| PathBuf::from(p).parent().map(|d| d.to_path_buf()))
}

/// Load `libtorch_cuda.so` (next to the loaded `libtorch_cpu.so`) with `RTLD_GLOBAL`, once, if it exists.
///
/// Binaries built in this workspace already link it (see dydis-core/build.rs), but a library loaded by evcxr
/// does not: its CUDA kernels register themselves only when the library is loaded, so the notebook prelude calls
/// this. Returns whether the CUDA library is loaded.
pub fn preload_cuda() -> bool {
    static LOADED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *LOADED.get_or_init(|| {
        // Make sure libtorch itself is mapped (a no-op query that goes through torch-sys).
        let _ = tch::utils::has_cuda();
        let Some(dir) = loaded_libtorch_dir() else { return false };
        let lib = dir.join("libtorch_cuda.so");
        if !lib.exists() {
            return false;
        }
        let Ok(c_path) = std::ffi::CString::new(lib.to_string_lossy().as_bytes()) else { return false };
        // SAFETY: dlopen with a valid NUL-terminated path; the handle is intentionally never closed.
        let handle = unsafe { libc::dlopen(c_path.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
        !handle.is_null()
    })
}

/// Set the number of intra-op CPU threads libtorch uses (0 = leave libtorch's default).
pub fn set_threads(n: usize) {
    if n > 0 {
        tch::set_num_threads(n as i32);
    }
}

/// Keep freed memory for reuse instead of handing it back to the kernel (glibc only; a no-op elsewhere).
///
/// libtorch allocates CPU tensors with `malloc`. With glibc's defaults every intermediate of a few megabytes is
/// `mmap`ed and unmapped again, so each one is page-faulted and zeroed afresh: perf showed page-fault and page-clearing
/// time as the largest single cost of DyGA's E-step (10,000 x 32 features, 20 components: 21 ms per E-step with the
/// defaults, 11 ms with this). Raises the mmap threshold to 32 MiB (glibc's ceiling) and the trim threshold to
/// 1 GiB. It also makes a cpu-quick training step about 20% faster (`dydis bench train-step`: 282/276 ms against
/// 370/316 ms with the defaults, alternating runs). Process-wide and idempotent; called by the CLI at start-up, by
/// DyGA fitting and by the trainers. Set `DYDIS_MALLOC_DEFAULTS=1` to keep glibc's defaults.
pub fn tune_allocator() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("DYDIS_MALLOC_DEFAULTS").is_some() {
            return;
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: mallopt only changes allocator parameters; it is called once, before the heavy allocations.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
            libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
        }
    });
}

/// Seed libtorch's global generators (CPU and every CUDA device). Rust-side randomness in dydis always takes an
/// explicit seed, so this plus the seeds in a run's config make a run reproducible on a given device.
pub fn seed_everything(seed: u64) {
    tch::manual_seed(seed as i64);
    if tch::Cuda::is_available() {
        tch::Cuda::manual_seed_all(seed);
    }
}

/// libtorch draws from one global generator per process. Code that seeds it and expects the same draws back (tests
/// run in parallel threads of one process, above all) holds this lock for as long as it draws, so that no other
/// holder's draws interleave with its own. A holder that panicked leaves the lock usable.
pub fn global_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What this process runs on: libtorch build and location, CUDA, threads.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RuntimeInfo {
    pub dydis_version: String,
    pub libtorch_version: String,
    pub libtorch_built_against: String,
    pub libtorch_loaded_from: Option<PathBuf>,
    pub cuda_library: bool,
    pub cuda_available: bool,
    pub cuda_devices: usize,
    pub cudnn_available: bool,
    pub threads: usize,
    pub default_device: String,
}

impl RuntimeInfo {
    pub fn collect() -> Self {
        let cuda_library = preload_cuda();
        let cuda_available = tch::Cuda::is_available();
        RuntimeInfo {
            dydis_version: env!("CARGO_PKG_VERSION").to_string(),
            libtorch_version: env!("DYDIS_LIBTORCH_VERSION").to_string(),
            libtorch_built_against: env!("DYDIS_LIBTORCH_LIB").to_string(),
            libtorch_loaded_from: loaded_libtorch_dir(),
            cuda_library,
            cuda_available,
            cuda_devices: if cuda_available { tch::Cuda::device_count() as usize } else { 0 },
            cudnn_available: cuda_available && tch::Cuda::cudnn_is_available(),
            threads: tch::get_num_threads().max(0) as usize,
            default_device: format!("{:?}", DeviceSpec::Auto.resolve().unwrap_or(tch::Device::Cpu)),
        }
    }

    pub fn table(&self) -> Table {
        let loaded = self.libtorch_loaded_from.as_ref().map(|p| p.display().to_string());
        Table::new(["item", "value"])
            .with_title("dydis runtime")
            .row(["dydis", &self.dydis_version])
            .row(["libtorch version", &self.libtorch_version])
            .row(["libtorch loaded from", loaded.as_deref().unwrap_or("(not loaded)")])
            .row(["libtorch_cuda.so loaded", &self.cuda_library.to_string()])
            .row(["CUDA available", &self.cuda_available.to_string()])
            .row(["CUDA devices", &self.cuda_devices.to_string()])
            .row(["cuDNN available", &self.cudnn_available.to_string()])
            .row(["CPU threads", &self.threads.to_string()])
            .row(["device for 'auto'", &self.default_device])
    }
}

crate::display::impl_show_via!(RuntimeInfo, table);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::Show;

    #[test]
    fn parses_device_specs() {
        assert_eq!("auto".parse::<DeviceSpec>().unwrap(), DeviceSpec::Auto);
        assert_eq!("CPU".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cpu);
        assert_eq!("cuda".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceSpec>().unwrap(), DeviceSpec::Cuda(3));
        for bad in ["", "cuda:", "cuda:x", "tpu", "cuda:-1"] {
            let err = bad.parse::<DeviceSpec>().unwrap_err().to_string();
            assert!(err.contains("expected auto, cpu, cuda"), "{bad}: {err}");
        }
        assert_eq!(DeviceSpec::Cuda(2).to_string(), "cuda:2");
    }

    #[test]
    fn cpu_and_auto_resolve_and_missing_cuda_is_an_error() {
        assert_eq!(DeviceSpec::Cpu.resolve().unwrap(), tch::Device::Cpu);
        let auto = DeviceSpec::Auto.resolve().unwrap();
        if cuda_available() {
            assert_eq!(auto, tch::Device::Cuda(0));
        } else {
            assert_eq!(auto, tch::Device::Cpu);
            let err = DeviceSpec::Cuda(0).resolve().unwrap_err().to_string();
            assert!(err.contains("cuda:0 was requested"), "{err}");
        }
        assert!(DeviceSpec::Cuda(999).resolve().is_err());
    }

    #[test]
    fn seeding_makes_draws_repeatable() {
        let _rng = global_rng_lock();
        seed_everything(7);
        let a = tch::Tensor::randn([5], (tch::Kind::Float, tch::Device::Cpu));
        seed_everything(7);
        let b = tch::Tensor::randn([5], (tch::Kind::Float, tch::Device::Cpu));
        assert!(a.equal(&b));
    }

    #[test]
    fn runtime_info_sees_the_loaded_libtorch() {
        let info = RuntimeInfo::collect();
        assert!(info.libtorch_loaded_from.is_some(), "libtorch_cpu.so not found in /proc/self/maps");
        assert!(info.libtorch_version.starts_with("2.13.0"), "{}", info.libtorch_version);
        assert!(info.threads >= 1);
        assert!(info.table().to_text().contains("libtorch version"));
    }
}
