//! A loopback HTTP proxy between strata and moto (or the GitHub test server) that sees
//! every request strata sends.
//!
//! - It counts requests by operation at the emulator's door, so a test asks "how many
//!   writes reached AWS?" of the wire, not of strata's own accounting.
//! - It sends everything to one moto account of its own (the `x-moto-account-id`
//!   header), so runs of the binary are as isolated as the library tests; a request
//!   signed with an assumed role's credentials goes to that role's account.
//! - It injects faults: throttling in each protocol's own words, 500 and 503 answers,
//!   slow answers and connections dropped before an answer.
//! - It holds the n-th write, sent on to moto or not, and never answers it, so a test
//!   can kill strata at a known point of an apply.
//!
//! One request per connection: the proxy answers with `Connection: close`, so the SDK
//! opens a fresh connection for each request and no answer is ever framed by guesswork.

use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request that reached the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// The operation: `CreateVpc`, `GetSecretValue`; for GitHub, the method and path.
    pub operation: String,
    /// What the proxy did with it.
    pub fault: Option<Fault>,
}

impl Call {
    /// True for a request that changes something: anything but an AWS Describe, Get or
    /// List, or an HTTP GET.
    pub fn is_write(&self) -> bool {
        !["Describe", "Get", "List", "GET "]
            .iter()
            .any(|p| self.operation.starts_with(p))
    }
}

/// A fault the proxy can answer with instead of moto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The service's throttling error (`RequestLimitExceeded` for EC2, `Throttling` for
    /// ELB and Auto Scaling, `ThrottlingException` for Secrets Manager).
    Throttle,
    /// An answer with this status and a body that is not AWS's.
    Status(u16),
    /// The request is sent on, and its answer comes this late.
    Slow(Duration),
    /// The connection is closed before the request is sent on.
    Drop,
}

/// Which requests a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requests {
    /// Every request whose number (from 1, over all requests) is a multiple of this.
    EveryNth(usize),
    /// Every request of this operation.
    Operation(String),
    /// Every request of this operation whose body holds this text (one environment's
    /// CIDR, say): a fault of one environment among several.
    Carrying(String, String),
}

/// Where the held write stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Before moto sees it: the write did not happen.
    Before(usize),
    /// After moto answered it: the write happened, strata never learns it did.
    After(usize),
}

#[derive(Default)]
struct State {
    calls: Vec<Call>,
    /// Writes left out of the count that `Hold` and `writes` go by.
    uncounted: Vec<String>,
    rules: Vec<(Requests, Vec<Fault>)>,
    writes: usize,
    hold: Option<Hold>,
    held: Option<Call>,
}

struct Shared {
    target: u16,
    /// The moto account every request goes to; `None` for another server.
    account: Option<String>,
    state: Mutex<State>,
    held: Condvar,
}

/// A running proxy; it stops when dropped.
pub struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

/// The proxies' own runtime, so sync tests and tokio tests can both use them.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("proxy")
            .enable_all()
            .build()
            .expect("the proxy runtime starts")
    })
}

impl Proxy {
    /// A proxy in front of the tests' moto that sends everything to `account`.
    pub fn new(account: &str) -> Proxy {
        Proxy::start(crate::cloud::moto().port, Some(account.to_owned()))
    }

    /// A proxy in front of another loopback server (the GitHub test server).
    pub fn in_front_of(port: u16) -> Proxy {
        Proxy::start(port, None)
    }

    fn start(target: u16, account: Option<String>) -> Proxy {
        let shared = Arc::new(Shared {
            target,
            account,
            state: Mutex::new(State::default()),
            held: Condvar::new(),
        });
        // Bound here, so the port is known before the first request; served on the
        // proxies' runtime (a test may be running on a runtime of its own).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        listener
            .set_nonblocking(true)
            .expect("a non-blocking listener");
        let port = listener.local_addr().expect("a bound address").port();
        let serving = shared.clone();
        let task = runtime().spawn(async move {
            let listener = TcpListener::from_std(listener).expect("a tokio listener");
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(serve(client, serving.clone()));
            }
        });
        Proxy { port, shared, task }
    }

    /// The endpoint URL to give strata.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Environment variables that point the binary at this proxy. `attempts` is the
    /// SDK's `AWS_MAX_ATTEMPTS` (1: no retries; unset: the SDK's standard policy).
    pub fn binary_vars(&self, attempts: Option<u32>) -> Vec<(&'static str, String)> {
        let mut vars = crate::cloud::binary_vars();
        vars.retain(|(k, _)| !matches!(*k, "AWS_ENDPOINT_URL" | "AWS_MAX_ATTEMPTS"));
        vars.push(("AWS_ENDPOINT_URL", self.url()));
        if let Some(n) = attempts {
            vars.push(("AWS_MAX_ATTEMPTS", n.to_string()));
        }
        vars
    }

    /// Runs the binary on `repo` through this proxy (no SDK retries), off the runtime
    /// that serves the proxy.
    pub async fn run(
        &self,
        repo: &crate::harness::GitRepo,
        args: &[&str],
    ) -> crate::harness::Output {
        let path = repo.path().to_owned();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let vars = self.binary_vars(Some(1));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            crate::harness::strata_with(&path, &args, &vars)
        })
        .await
        .expect("the run finishes")
    }

    /// Answers the requests `which` picks with `faults` in turn (the last one repeats).
    pub fn inject(&self, which: Requests, faults: &[Fault]) {
        assert!(!faults.is_empty(), "a rule needs a fault");
        self.state().rules.push((which, faults.to_vec()));
    }

    /// Stops injecting faults.
    pub fn heal(&self) {
        self.state().rules.clear();
    }

    /// Leaves these operations out of the writes counted (for [`Proxy::hold`] and
    /// [`Proxy::writes`]): requests a background task sends at moments of its own.
    pub fn uncount(&self, operations: &[&str]) {
        self.state().uncounted = operations.iter().map(|o| (*o).to_owned()).collect();
    }

    /// Holds the n-th write (from 1) and every request after it.
    pub fn hold(&self, hold: Hold) {
        self.state().hold = Some(hold);
    }

    /// Waits (at most `limit`) until a write is held; returns it.
    pub fn wait_held(&self, limit: Duration) -> Option<Call> {
        let state = self.shared.state.lock().expect("proxy state");
        let (state, _) = self
            .shared
            .held
            .wait_timeout_while(state, limit, |s| s.held.is_none())
            .expect("proxy state");
        state.held.clone()
    }

    /// Every request so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// The operations of the write requests so far, in order.
    pub fn writes(&self) -> Vec<String> {
        let state = self.state();
        state
            .calls
            .iter()
            .filter(|c| c.is_write() && !state.uncounted.contains(&c.operation))
            .map(|c| c.operation.clone())
            .collect()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("proxy state")
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the proxy decided for one request.
enum Verdict {
    Forward,
    Fault(Fault),
    Hold { forward: bool },
}

fn decide(shared: &Shared, operation: &str, body: &[u8]) -> Verdict {
    let mut state = shared.state.lock().expect("proxy state");
    let mut call = Call {
        operation: operation.to_owned(),
        fault: None,
    };
    if state.held.is_some() {
        // After the held write nothing is answered: strata is being killed.
        state.calls.push(call);
        return Verdict::Hold { forward: false };
    }
    let number = state.calls.len() + 1;
    if call.is_write() && !state.uncounted.contains(&call.operation) {
        state.writes += 1;
        let nth = state.writes;
        let forward = match state.hold {
            Some(Hold::Before(n)) if n == nth => Some(false),
            Some(Hold::After(n)) if n == nth => Some(true),
            _ => None,
        };
        if let Some(forward) = forward {
            state.held = Some(call.clone());
            state.calls.push(call);
            shared.held.notify_all();
            return Verdict::Hold { forward };
        }
    }
    let mut fault = None;
    for (which, faults) in &mut state.rules {
        let hit = match which {
            Requests::EveryNth(n) => number.is_multiple_of(*n),
            Requests::Operation(op) => op == operation,
            Requests::Carrying(op, text) => {
                op == operation && memchr::memmem::find(body, text.as_bytes()).is_some()
            }
        };
        if hit {
            let next = faults[0];
            if faults.len() > 1 {
                faults.rotate_left(1);
            }
            fault = Some(next);
            break;
        }
    }
    call.fault = fault;
    state.calls.push(call);
    match fault {
        Some(f) => Verdict::Fault(f),
        None => Verdict::Forward,
    }
}

/// One connection: read one request, decide, answer, close.
async fn serve(mut client: TcpStream, shared: Arc<Shared>) {
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    let operation = request.operation();
    match decide(&shared, &operation, &request.body) {
        Verdict::Forward => {
            if let Some(answer) = forward(&shared, &request).await {
                let _ = client.write_all(&answer).await;
            }
        }
        Verdict::Fault(Fault::Slow(delay)) => {
            tokio::time::sleep(delay).await;
            if let Some(answer) = forward(&shared, &request).await {
                let _ = client.write_all(&answer).await;
            }
        }
        Verdict::Fault(Fault::Drop) => {}
        Verdict::Fault(Fault::Throttle) => {
            let _ = client.write_all(&throttled(&request)).await;
        }
        Verdict::Fault(Fault::Status(code)) => {
            let body = format!("<html>injected {code}</html>");
            let _ = client
                .write_all(&answer(code, "text/html", &[], &body))
                .await;
        }
        Verdict::Hold { forward: send } => {
            if send {
                let _ = forward(&shared, &request).await;
            }
            // Never answer; wait for strata to go away.
            let mut sink = [0u8; 1024];
            while matches!(client.read(&mut sink).await, Ok(n) if n > 0) {}
        }
    }
}

/// A request as it came: its head (without the blank line) and its body.
struct Request {
    head: String,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then_some(value.trim())
        })
    }

    /// The signing name in the credential scope: `ec2`, `secretsmanager`.
    fn service(&self) -> String {
        self.header("authorization")
            .and_then(|auth| auth.split("Credential=").nth(1))
            .and_then(|scope| scope.split('/').nth(3))
            .unwrap_or("unknown")
            .to_owned()
    }

    /// `X-Amz-Target: secretsmanager.GetSecretValue`, or the query's `Action=`; for
    /// another server, the request line's method and path.
    fn operation(&self) -> String {
        if let Some(target) = self.header("x-amz-target") {
            return target.rsplit('.').next().unwrap_or(target).to_owned();
        }
        let query = String::from_utf8_lossy(&self.body);
        if let Some(action) = query
            .split('&')
            .find_map(|pair| pair.strip_prefix("Action="))
        {
            return action.to_owned();
        }
        let mut line = self.head.lines().next().unwrap_or("").split(' ');
        format!(
            "{} {}",
            line.next().unwrap_or(""),
            line.next().unwrap_or("")
        )
    }
}

async fn read_request(client: &mut TcpStream) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut request = Request {
        head,
        body: buf[head_end + 4..].to_vec(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    while request.body.len() < length {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        request.body.extend_from_slice(&chunk[..n]);
    }
    Some(request)
}

/// Sends the request to moto in the proxy's account; returns moto's answer, marked
/// to close the connection.
async fn forward(shared: &Shared, request: &Request) -> Option<Vec<u8>> {
    let mut head: Vec<&str> = request
        .head
        .lines()
        .filter(|line| {
            let key = line.split(':').next().unwrap_or("").trim();
            !key.eq_ignore_ascii_case("connection")
                && !key.eq_ignore_ascii_case("x-moto-account-id")
        })
        .collect();
    // A request signed with a role's credentials (STS hands out `ASIA…` keys) goes to
    // the account moto maps them to: the role's.
    let assumed = request
        .header("authorization")
        .is_some_and(|a| a.contains("Credential=ASIA"));
    let account = shared
        .account
        .as_ref()
        .filter(|_| !assumed)
        .map(|a| format!("x-moto-account-id: {a}"));
    head.extend(account.as_deref());
    head.push("Connection: close");
    let mut bytes = head.join("\r\n").into_bytes();
    bytes.extend_from_slice(b"\r\n\r\n");
    bytes.extend_from_slice(&request.body);
    let mut server = TcpStream::connect(("127.0.0.1", shared.target))
        .await
        .ok()?;
    server.write_all(&bytes).await.ok()?;
    let mut answer = Vec::new();
    server.read_to_end(&mut answer).await.ok()?;
    Some(closing(answer))
}

/// The answer with `Connection: close` in its head, whatever moto said.
fn closing(answer: Vec<u8>) -> Vec<u8> {
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        return answer;
    };
    let head = String::from_utf8_lossy(&answer[..end]);
    let mut lines: Vec<&str> = head
        .lines()
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let mut out = lines.join("\r\n").into_bytes();
    out.extend_from_slice(&answer[end..]);
    out
}

/// The service's own throttling error, as AWS sends it.
fn throttled(request: &Request) -> Vec<u8> {
    match request.service().as_str() {
        "ec2" => answer(
            503,
            "text/xml",
            &[],
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>RequestLimitExceeded</Code>\
             <Message>Request limit exceeded.</Message></Error></Errors><RequestID>injected</RequestID></Response>",
        ),
        "secretsmanager" => answer(
            400,
            "application/x-amz-json-1.1",
            &[("x-amzn-ErrorType", "ThrottlingException")],
            r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
        ),
        _ => answer(
            400,
            "text/xml",
            &[],
            "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>\
             </Error><RequestId>injected</RequestId></ErrorResponse>",
        ),
    }
}

fn answer(status: u16, content_type: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Injected",
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}
