//! A Lambda Runtime API emulator: runs a real compiled function binary as a child process and
//! feeds it invocations, one at a time, as one Lambda execution environment does.
//!
//! The binary talks to it exactly as to Lambda: `GET /runtime/invocation/next`, then
//! `POST /runtime/invocation/{id}/response` or `/error` (or `/runtime/init/error` at start-up).
//! Every line the function prints is kept, for the PII checks, and written to a log file.
//!
//! The timeout is enforced as Lambda enforces it: a function still running at its deadline is
//! killed, the invocation fails ([`InvokeError::TimedOut`]), and the next invocation gets a fresh
//! process (a cold start) on the same Runtime API. As in Lambda, the deadline runs from the moment
//! the function receives the invocation (its invoke phase): a process still initialising is
//! bounded by Lambda's separate 10 s init limit, not by the function's timeout.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, oneshot, watch};

/// How an invocation ended, when it did not return a response.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// The handler returned an error (Lambda's "function error"): `errorType` and `errorMessage`.
    #[error("function error: {0}")]
    Function(Value),
    /// The process exited before answering.
    #[error("function process exited: {0}")]
    Crashed(String),
    /// No answer before the invocation's deadline.
    #[error("function timed out")]
    TimedOut,
}

type Outcome = Result<Value, InvokeError>;

/// Where and how the function's process runs, beyond its binary and environment: what Lambda
/// decides from the function's configuration.
#[derive(Debug, Clone, Default)]
pub struct Placement {
    /// The configured memory, as `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` tells the function
    /// (128 when unset).
    pub memory_mb: Option<u32>,
    /// A cgroup-v1 `cgroup.procs` file every process of the function joins before it executes
    /// the binary: the CPU share Lambda gives that memory (see `cpu_share`).
    pub cgroup_procs: Option<PathBuf>,
    /// A program, with its arguments, that runs the binary (given as its last argument):
    /// `qemu-aarch64-static -L /usr/aarch64-linux-gnu` for an arm64 bootstrap on x86_64.
    pub launcher: Vec<std::ffi::OsString>,
}

/// When an invocation was handed to the function and when it answered, on the emulator's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct InvocationTimes {
    pub delivered: Option<Instant>,
    pub answered: Option<Instant>,
}

impl InvocationTimes {
    /// The function's own time for the invocation: from the answer to its `next` poll to its
    /// response, what Lambda bills as duration.
    pub fn own(&self) -> Option<Duration> {
        Some(self.answered?.saturating_duration_since(self.delivered?))
    }
}

/// When the current process was started and when it first asked for an invocation.
#[derive(Debug, Clone, Copy)]
pub struct ProcessTimes {
    pub spawned: Instant,
    pub first_poll: Option<Instant>,
}

impl ProcessTimes {
    /// Spawn to first poll: the function's init phase.
    pub fn init(&self) -> Option<Duration> {
        Some(self.first_poll?.saturating_duration_since(self.spawned))
    }
}

/// Lambda's limit on an on-demand function's init phase, counted apart from its timeout.
const INIT_LIMIT: Duration = Duration::from_secs(10);

struct Invocation {
    request_id: String,
    payload: Value,
    /// The function's timeout: the deadline is set when the function receives the invocation.
    timeout: Duration,
    /// Told the deadline when the function receives the invocation.
    delivered: oneshot::Sender<Instant>,
}

/// Where an invocation's answer goes.
type Answer = oneshot::Sender<(Outcome, InvocationTimes)>;

struct Shared {
    next: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    /// Invocations waiting for their answer, each with the generation of the process it was
    /// sent to (so that a process's exit fails its own invocations only, not those of the
    /// process that replaces it).
    pending: Mutex<HashMap<String, (u64, Answer)>>,
    /// The generation the next process started gets.
    next_generation: std::sync::atomic::AtomicU64,
    delivered: Mutex<HashMap<String, Instant>>,
    process_times: Mutex<Option<ProcessTimes>>,
    function_arn: String,
    init_error: Mutex<Option<Value>>,
}

/// A function binary running under the emulator. Dropping it kills the process.
pub struct LambdaFunction {
    name: String,
    sender: mpsc::Sender<Invocation>,
    shared: Arc<Shared>,
    /// The process of the current execution environment (replaced after a timeout).
    process: Mutex<Process>,
    launch: Launch,
    lines: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
    /// Processes started so far: 1, plus one per invocation killed at its deadline.
    starts: std::sync::atomic::AtomicUsize,
    last_invocation: Mutex<Option<InvocationTimes>>,
    pub timeout: Duration,
}

/// One process of the function, and how to stop it.
struct Process {
    kill: mpsc::Sender<()>,
    pid: Option<u32>,
    exited: watch::Receiver<Option<String>>,
    generation: u64,
}

/// What starting the function's process takes.
struct Launch {
    binary: std::path::PathBuf,
    env: HashMap<String, String>,
    placement: Placement,
    address: std::net::SocketAddr,
    file: Arc<tokio::sync::Mutex<tokio::fs::File>>,
}

impl LambdaFunction {
    /// Starts `binary` with `env` (plus the variables the Lambda runtime sets), serving the
    /// Runtime API on a free loopback port. Output goes to `log_dir/<name>.log`.
    pub async fn start(
        name: &str,
        binary: &Path,
        env: &HashMap<String, String>,
        timeout: Duration,
        log_dir: &Path,
    ) -> Result<Self> {
        Self::start_placed(name, binary, env, timeout, log_dir, Placement::default()).await
    }

    /// [`LambdaFunction::start`], with the process placed as `placement` says (its memory
    /// setting and CPU share).
    pub async fn start_placed(
        name: &str,
        binary: &Path,
        env: &HashMap<String, String>,
        timeout: Duration,
        log_dir: &Path,
        placement: Placement,
    ) -> Result<Self> {
        let (sender, receiver) = mpsc::channel(64);
        let shared = Arc::new(Shared {
            next: tokio::sync::Mutex::new(receiver),
            pending: Mutex::new(HashMap::new()),
            next_generation: std::sync::atomic::AtomicU64::new(0),
            delivered: Mutex::new(HashMap::new()),
            process_times: Mutex::new(None),
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{name}"),
            init_error: Mutex::new(None),
        });
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(invocation_response),
            )
            .route(
                "/2018-06-01/runtime/invocation/{id}/error",
                post(invocation_error),
            )
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the runtime API port")?;
        let address = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });

        let lines = Arc::new(Mutex::new(Vec::new()));
        let log_path = log_dir.join(format!("{name}.log"));
        let file = tokio::fs::File::create(&log_path).await?;
        let launch = Launch {
            binary: binary.to_path_buf(),
            env: env.clone(),
            placement,
            address,
            file: Arc::new(tokio::sync::Mutex::new(file)),
        };
        let process = spawn(name, &launch, &shared, &lines)?;
        Ok(Self {
            name: name.to_owned(),
            sender,
            shared,
            process: Mutex::new(process),
            launch,
            lines,
            server,
            starts: std::sync::atomic::AtomicUsize::new(1),
            last_invocation: Mutex::new(None),
            timeout,
        })
    }

    /// Invokes the function with `payload` and waits for its answer, at most `self.timeout`.
    /// A function still running then is killed, as Lambda kills it, and the next invocation
    /// starts a fresh process.
    pub async fn invoke(&self, payload: &Value) -> Outcome {
        self.invoke_timed(payload).await.0
    }

    /// [`LambdaFunction::invoke`], with when the invocation was delivered and answered.
    pub async fn invoke_timed(&self, payload: &Value) -> (Outcome, InvocationTimes) {
        let (outcome, times) = self.invoke_untracked(payload).await;
        *self.last_invocation.lock().unwrap() = Some(times);
        (outcome, times)
    }

    /// The times of the last invocation that ended.
    pub fn last_invocation(&self) -> Option<InvocationTimes> {
        *self.last_invocation.lock().unwrap()
    }

    async fn invoke_untracked(&self, payload: &Value) -> (Outcome, InvocationTimes) {
        let untimed = |outcome: Outcome| (outcome, InvocationTimes::default());
        let (mut exited, generation) = {
            let process = self.process.lock().unwrap();
            (process.exited.clone(), process.generation)
        };
        if let Some(why) = exited.borrow().clone() {
            return untimed(Err(InvokeError::Crashed(why)));
        }
        let request_id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.shared
            .pending
            .lock()
            .unwrap()
            .insert(request_id.clone(), (generation, tx));
        let (delivered_tx, delivered_rx) = oneshot::channel();
        let invocation = Invocation {
            request_id: request_id.clone(),
            payload: payload.clone(),
            timeout: self.timeout,
            delivered: delivered_tx,
        };
        if self.sender.send(invocation).await.is_err() {
            return untimed(Err(InvokeError::Crashed("runtime API closed".into())));
        }
        let past_deadline = async {
            let deadline = match tokio::time::timeout(INIT_LIMIT, delivered_rx).await {
                Ok(Ok(deadline)) => deadline,
                // Never received within the init limit (or dropped unreceived): Lambda fails it.
                _ => Instant::now(),
            };
            tokio::time::sleep_until(deadline.into()).await;
        };
        tokio::select! {
            outcome = rx => outcome.unwrap_or_else(|_| untimed(Err(InvokeError::Crashed("process exited".into())))),
            status = exited.wait_for(|status| status.is_some()) => {
                let why = status.map(|s| s.clone().unwrap_or_default()).unwrap_or_default();
                untimed(Err(InvokeError::Crashed(why)))
            }
            _ = past_deadline => {
                self.shared.pending.lock().unwrap().remove(&request_id);
                self.shared.delivered.lock().unwrap().remove(&request_id);
                self.replace_process().await;
                untimed(Err(InvokeError::TimedOut))
            }
        }
    }

    /// When the current process was started and first polled for an invocation.
    pub fn process_times(&self) -> Option<ProcessTimes> {
        *self.shared.process_times.lock().unwrap()
    }

    /// Kills the current process and starts a fresh one on the same Runtime API.
    async fn replace_process(&self) {
        let (kill, mut exited) = {
            let process = self.process.lock().unwrap();
            (process.kill.clone(), process.exited.clone())
        };
        let _ = kill.try_send(());
        let _ = exited.wait_for(|status| status.is_some()).await;
        match spawn(&self.name, &self.launch, &self.shared, &self.lines) {
            Ok(fresh) => {
                *self.process.lock().unwrap() = fresh;
                self.starts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            Err(err) => self
                .lines
                .lock()
                .unwrap()
                .push(format!("emulator: cannot restart: {err:#}")),
        }
    }

    /// How many processes this function has started: 1, plus one per invocation killed at its
    /// deadline.
    pub fn starts(&self) -> usize {
        self.starts.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Starts one process of the function, its output collected and its exit watched.
fn spawn(
    name: &str,
    launch: &Launch,
    shared: &Arc<Shared>,
    lines: &Arc<Mutex<Vec<String>>>,
) -> Result<Process> {
    let mut command = match launch.placement.launcher.split_first() {
        Some((program, args)) => {
            let mut command = Command::new(program);
            command.args(args).arg(&launch.binary);
            command
        }
        None => Command::new(&launch.binary),
    };
    command
        .env_clear()
        .envs(&launch.env)
        .env("AWS_LAMBDA_RUNTIME_API", launch.address.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", name)
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            launch.placement.memory_mb.unwrap_or(128).to_string(),
        )
        .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // Opened before the fork: between fork and exec only async-signal-safe calls are allowed.
    let cgroup = match &launch.placement.cgroup_procs {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => None,
    };
    // SAFETY: the closure runs between fork and exec and calls only async-signal-safe functions
    // (prctl, and join_cgroup's getpid and write), allocating nothing.
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if let Some(file) = &cgroup {
                join_cgroup(file)?;
            }
            Ok(())
        });
    }
    *shared.process_times.lock().unwrap() = Some(ProcessTimes {
        spawned: Instant::now(),
        first_poll: None,
    });
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", launch.binary.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let stderr = child.stderr.take().context("no stderr")?;
    let out_task = tokio::spawn(collect_lines(stdout, Arc::clone(lines), Arc::clone(&launch.file)));
    let err_task = tokio::spawn(collect_lines(stderr, Arc::clone(lines), Arc::clone(&launch.file)));

    let (exit_tx, exited) = watch::channel(None);
    let (kill, kill_rx) = mpsc::channel(1);
    let pid = child.id();
    let generation = shared
        .next_generation
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    watch_exit(
        child,
        kill_rx,
        exit_tx,
        Arc::clone(shared),
        generation,
        [out_task, err_task],
    );
    Ok(Process {
        kill,
        pid,
        exited,
        generation,
    })
}

impl LambdaFunction {
    /// Every line the function printed so far, stdout and stderr.
    pub fn log_lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// [`LambdaFunction::log_lines`] once no new line has arrived for 100 ms: an invocation's
    /// answer can reach the emulator before the last lines the function printed for it.
    pub async fn settled_log_lines(&self) -> Vec<String> {
        settled(|| self.log_lines()).await
    }

    /// Peak resident memory of the function process so far (Linux `VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        self.memory_status("VmHWM:")
    }

    /// Resident memory of the function process now (Linux `VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        self.memory_status("VmRSS:")
    }

    fn memory_status(&self, field: &str) -> Option<u64> {
        let pid = self.process.lock().unwrap().pid?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|l| l.starts_with(field))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while the process runs.
    pub fn pid(&self) -> Option<u32> {
        let process = self.process.lock().unwrap();
        process.pid.filter(|_| process.exited.borrow().is_none())
    }

    /// False once the process has exited, crashed or been killed (other than at a deadline,
    /// after which a fresh process runs).
    pub fn is_running(&self) -> bool {
        self.process.lock().unwrap().exited.borrow().is_none()
    }

    /// Kills the process with SIGKILL, by PID: a crash, not a shutdown. Invocations in flight
    /// end as [`InvokeError::Crashed`].
    pub fn kill(&self) {
        if let Some(pid) = self.pid() {
            kill_process(pid);
        }
    }
}

impl LambdaFunction {
    /// Asserts that the process stopped at start-up (before it asked for an invocation, as
    /// Lambda's "Runtime exited with error" shows) and logged one `config_invalid` line naming
    /// `variable`. `payload` is an invocation it never gets.
    pub async fn assert_refused_at_start_up(&self, payload: &serde_json::Value, variable: &str) {
        match self.invoke(payload).await {
            Err(InvokeError::Crashed(_)) => {}
            other => panic!("{variable} must stop start-up, got {other:?}"),
        }
        let logged: Vec<serde_json::Value> = self
            .log_lines()
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|v| v["event"] == "config_invalid")
            .collect();
        assert_eq!(logged.len(), 1, "{variable}: {:?}", self.log_lines());
        assert!(
            logged[0]["error"].as_str().unwrap_or_default().contains(variable),
            "{logged:?}"
        );
    }
}

/// What `lines` returns once it has not grown for 100 ms.
pub(crate) async fn settled(lines: impl Fn() -> Vec<String>) -> Vec<String> {
    let mut seen = lines();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = lines();
        if now.len() == seen.len() {
            return now;
        }
        seen = now;
    }
}

/// Sends SIGKILL to `pid`. For code that must crash a function at an exact moment from
/// somewhere that does not own its [`LambdaFunction`] (a fault-injecting proxy's hook).
pub fn kill_process(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) touches no memory of ours. Call it only for a process known to run: the
    // pid of one that has been reaped can be reused by the system.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        if let Ok(process) = self.process.lock() {
            let _ = process.kill.try_send(());
        }
        self.server.abort();
    }
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open as `file`. Runs between
/// fork and exec: formats the pid by hand and calls write(2) directly, allocating nothing.
fn join_cgroup(file: &std::fs::File) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: getpid and write touch no memory but the buffer below.
    #[allow(unsafe_code)]
    let mut pid = unsafe { libc::getpid() } as u32;
    let mut digits = [0u8; 10];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (pid % 10) as u8;
        pid /= 10;
        if pid == 0 {
            break;
        }
    }
    let text = &digits[start..];
    // SAFETY: `text` is valid for `text.len()` bytes for the whole call.
    #[allow(unsafe_code)]
    let written = unsafe { libc::write(file.as_raw_fd(), text.as_ptr().cast(), text.len()) };
    if written == text.len() as isize {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Waits for the child to exit (or kills it on request), then fails the invocations sent to it,
/// so that a crash ends them at once instead of at their timeout.
fn watch_exit(
    mut child: Child,
    mut kill: mpsc::Receiver<()>,
    exit_tx: watch::Sender<Option<String>>,
    shared: Arc<Shared>,
    generation: u64,
    readers: [tokio::task::JoinHandle<()>; 2],
) {
    tokio::spawn(async move {
        let status = tokio::select! {
            status = child.wait() => status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()),
            _ = kill.recv() => {
                let _ = child.kill().await;
                "killed".to_owned()
            }
        };
        for reader in readers {
            let _ = reader.await;
        }
        let init = shared.init_error.lock().unwrap().clone();
        let why = match init {
            Some(body) => format!("{status}; init error: {body}"),
            None => status,
        };
        let _ = exit_tx.send(Some(why.clone()));
        // Only this process's invocations: whoever waited for the exit (a restart after a
        // timeout) may already have sent the next one to the fresh process.
        let mine: Vec<_> = {
            let mut pending = shared.pending.lock().unwrap();
            let ids: Vec<String> = pending
                .iter()
                .filter(|(_, (sent_to, _))| *sent_to == generation)
                .map(|(id, _)| id.clone())
                .collect();
            ids.into_iter().filter_map(|id| pending.remove(&id)).collect()
        };
        for (_, waiter) in mine {
            let _ = waiter.send((Err(InvokeError::Crashed(why.clone())), InvocationTimes::default()));
        }
    });
}

async fn collect_lines(
    stream: impl tokio::io::AsyncRead + Unpin,
    lines: Arc<Mutex<Vec<String>>>,
    file: Arc<tokio::sync::Mutex<tokio::fs::File>>,
) {
    let mut reader = BufReader::new(stream).lines();
    while let Ok(Some(line)) = reader.next_line().await {
        {
            let mut file = file.lock().await;
            let _ = file.write_all(line.as_bytes()).await;
            let _ = file.write_all(b"\n").await;
        }
        lines.lock().unwrap().push(line);
    }
}

async fn next_invocation(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    if let Some(times) = shared.process_times.lock().unwrap().as_mut() {
        times.first_poll.get_or_insert_with(Instant::now);
    }
    let invocation = shared.next.lock().await.recv().await;
    let Some(invocation) = invocation else {
        return (StatusCode::GONE, HeaderMap::new(), Bytes::new());
    };
    let delivered = Instant::now();
    let deadline_ms = epoch_ms() + invocation.timeout.as_millis() as u64;
    let _ = invocation.delivered.send(delivered + invocation.timeout);
    shared
        .delivered
        .lock()
        .unwrap()
        .insert(invocation.request_id.clone(), delivered);
    let mut headers = HeaderMap::new();
    let header = |text: &str| HeaderValue::from_str(text).expect("ascii header");
    headers.insert("lambda-runtime-aws-request-id", header(&invocation.request_id));
    headers.insert("lambda-runtime-deadline-ms", header(&deadline_ms.to_string()));
    headers.insert(
        "lambda-runtime-invoked-function-arn",
        header(&shared.function_arn),
    );
    headers.insert(
        "lambda-runtime-trace-id",
        header("Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"),
    );
    headers.insert("content-type", header("application/json"));
    (
        StatusCode::OK,
        headers,
        Bytes::from(invocation.payload.to_string()),
    )
}

async fn invocation_response(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    settle(
        &shared,
        &id,
        serde_json::from_slice(&body)
            .map_err(|e| InvokeError::Function(Value::String(format!("response is not JSON: {e}")))),
    )
}

async fn invocation_error(
    State(shared): State<Arc<Shared>>,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    let error = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    settle(&shared, &id, Err(InvokeError::Function(error)))
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> StatusCode {
    let error = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    *shared.init_error.lock().unwrap() = Some(error);
    StatusCode::ACCEPTED
}

fn settle(shared: &Shared, id: &str, outcome: Outcome) -> StatusCode {
    let times = InvocationTimes {
        delivered: shared.delivered.lock().unwrap().remove(id),
        answered: Some(Instant::now()),
    };
    match shared.pending.lock().unwrap().remove(id) {
        Some((_, waiter)) => {
            let _ = waiter.send((outcome, times));
            StatusCode::ACCEPTED
        }
        None => StatusCode::NOT_FOUND,
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
