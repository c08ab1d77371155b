//! The codeward server under test: a separate process (the release binary), its readiness,
//! memory and CPU as the kernel reports them in /proc.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    child: Child,
    pub base: String,
    /// From spawning the process to the first 200 from `/readyz`.
    pub start_to_ready: Duration,
}

impl Server {
    /// Spawns `binary` with `args` on a free port, logs to `log`, and waits until it is ready.
    pub async fn start(binary: &str, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_millis(500))
            .build()?;
        let ready = format!("http://127.0.0.1:{port}/readyz");
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args(args)
            .arg(format!("--listen=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()?;
        loop {
            if let Ok(response) = client.get(&ready).send().await
                && response.status().is_success()
            {
                break;
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("codeward exited with {status}; see {}", log.display());
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(60),
                "codeward not ready after 60 s; see {}",
                log.display()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        Ok(Self {
            start_to_ready: started.elapsed(),
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmRSS:")
    }

    /// Peak resident memory since start or since the last `reset_peak`, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        status_field(self.pid(), "VmHWM:")
    }

    /// Starts a new peak-RSS measurement (writing 5 to clear_refs resets VmHWM).
    pub fn reset_peak(&self) {
        let path = format!("/proc/{}/clear_refs", self.pid());
        if let Err(error) = std::fs::write(&path, "5") {
            eprintln!("cannot reset the peak RSS ({error}); peaks are since start");
        }
    }

    /// SIGTERM, then waits for the graceful exit (SIGKILL after 10 s).
    pub fn stop(mut self) -> anyhow::Result<()> {
        Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait()?.is_none() {
            if Instant::now() > deadline {
                self.child.kill()?;
                self.child.wait()?;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn status_field(pid: u32, name: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system, in clock ticks) of processes and of the whole machine.
#[derive(Clone, Copy, Debug)]
pub struct CpuSnapshot {
    at: Instant,
    server: u64,
    loadgen: u64,
    database: u64,
    machine_busy: u64,
}

/// Cores used on average between two snapshots, by whom.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuUse {
    pub server: f64,
    pub loadgen: f64,
    /// PostgreSQL's processes (SQLite runs inside whoever opened it).
    pub database: f64,
    /// Everything else on the machine: other users of this shared box.
    pub other: f64,
}

/// Linux reports process and machine CPU time in USER_HZ, which is 100 on every platform
/// Rust targets.
const TICKS_PER_SEC: f64 = 100.0;

impl CpuSnapshot {
    pub fn take(server_pid: Option<u32>) -> Self {
        let database = std::fs::read_dir("/proc")
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| {
                        e.file_name()
                            .to_string_lossy()
                            .bytes()
                            .all(|b| b.is_ascii_digit())
                    })
                    .filter_map(|e| process_ticks(&e.path().join("stat"), Some("postgres")))
                    .sum()
            })
            .unwrap_or(0);
        Self {
            at: Instant::now(),
            server: server_pid
                .and_then(|pid| process_ticks(Path::new(&format!("/proc/{pid}/stat")), None))
                .unwrap_or(0),
            loadgen: process_ticks(Path::new("/proc/self/stat"), None).unwrap_or(0),
            database,
            machine_busy: machine_busy_ticks(),
        }
    }

    pub fn until(&self, later: &Self) -> CpuUse {
        let secs = (later.at - self.at).as_secs_f64().max(1e-3);
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SEC / secs;
        let server = cores(self.server, later.server);
        let loadgen = cores(self.loadgen, later.loadgen);
        let database = cores(self.database, later.database);
        let machine = cores(self.machine_busy, later.machine_busy);
        CpuUse {
            server,
            loadgen,
            database,
            other: (machine - server - loadgen - database).max(0.0),
        }
    }
}

/// CPU time (user + system) `pid` has used so far, in clock ticks (0 if it is gone).
pub fn process_cpu_ticks(pid: u32) -> u64 {
    process_ticks(Path::new(&format!("/proc/{pid}/stat")), None).unwrap_or(0)
}

/// Clock ticks per second of `process_cpu_ticks`.
pub const CPU_TICKS_PER_SEC: f64 = TICKS_PER_SEC;

/// utime + stime of one process, if its command name is `only` (or any when `None`).
fn process_ticks(stat: &Path, only: Option<&str>) -> Option<u64> {
    let text = std::fs::read_to_string(stat).ok()?;
    // The command name is in parentheses and may itself contain spaces or parentheses.
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if only.is_some_and(|name| &text[open + 1..close] != name) {
        return None;
    }
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    // After the name: state is field 3 of the man page, utime 14 and stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

fn machine_busy_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(line) = stat.lines().next() else {
        return 0;
    };
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = values.iter().take(8).sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    total - idle
}

/// One line saying what this machine is.
pub fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let memory_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
        })
        .map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({model}), {memory_gib:.0} GiB, Linux {}",
        kernel.trim()
    )
}
