//! An HTTP server standing between strata and its AWS endpoint in the benchmarks.
//!
//! It forwards every request to moto and keeps each answer (a recording), or it serves
//! a recording's answers itself. Either way it can hold each request for a latency
//! before answering, every request on its own timer: no queue, so a benchmark behind
//! it measures strata's own waiting, not the emulator's. It numbers each request's
//! dependent round: one more than the deepest round already answered when it arrived.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::body::{Body, Incoming};
use hyper::{Request, Response};
use serde::{Deserialize, Serialize};

/// A request as a recording knows it: its signature and dates left out, so the same
/// read made again finds its answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Call {
    method: String,
    uri: String,
    /// `X-Amz-Target`, which names the operation of JSON protocols (Secrets Manager).
    target: Option<String>,
    body: String,
}

impl Call {
    /// The operation's name: `DescribeVpcs`, `GetSecretValue`, ...
    pub fn operation(&self) -> &str {
        match &self.target {
            Some(target) => target.rsplit('.').next().unwrap_or_default(),
            None => self
                .body
                .split('&')
                .find_map(|pair| pair.strip_prefix("Action="))
                .unwrap_or_default(),
        }
    }

    /// True for a request to ELBv2 (its API version names it).
    pub fn is_elb(&self) -> bool {
        self.body
            .split('&')
            .any(|pair| pair == "Version=2015-12-01")
    }

    /// True for an operation that changes nothing: `Describe*`, `Get*`, `List*`.
    pub fn is_read(&self) -> bool {
        ["Describe", "Get", "List"]
            .iter()
            .any(|verb| self.operation().starts_with(verb))
    }
}

/// One answer as moto gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

/// Answers by request, as recorded from moto.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Recording {
    answers: Vec<(Call, Answer)>,
}

impl Recording {
    pub fn len(&self) -> usize {
        self.answers.len()
    }

    /// How many of the recorded requests `which` picks.
    pub fn count(&self, which: impl Fn(&Call) -> bool) -> usize {
        self.answers.iter().filter(|(call, _)| which(call)).count()
    }
}

/// What the server does with a request.
pub enum Mode {
    /// Sends it on to `upstream` and keeps the answer; holds it for `latency(call)`
    /// first.
    Forward {
        upstream: String,
        latency: fn(&Call) -> Duration,
    },
    /// Answers from a recording after `latency`; a request it does not hold is a 500
    /// and a miss. With `elb_bucket`, ELBv2 reads beyond its documented bucket (40 at
    /// once, then 10 a second) are refused as AWS refuses them.
    Replay { latency: Duration, elb_bucket: bool },
}

/// What the server saw since it started or was last reset.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    pub requests: usize,
    /// The deepest dependent round.
    pub rounds: usize,
    /// How many of each operation every round asked for.
    pub by_round: BTreeMap<usize, BTreeMap<String, usize>>,
    /// Requests a replay did not hold.
    pub misses: usize,
    /// ELBv2 reads refused for want of a token.
    pub throttled: usize,
}

/// ELBv2's bucket for reads, as its guide documents it: 40 tokens, 10 more a second.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    const BURST: f64 = 40.0;
    const PER_SECOND: f64 = 10.0;

    fn full() -> Bucket {
        Bucket {
            tokens: Bucket::BURST,
            at: Instant::now(),
        }
    }

    /// Takes a token if there is one.
    fn take(&mut self) -> bool {
        let now = Instant::now();
        let refilled = now.duration_since(self.at).as_secs_f64() * Bucket::PER_SECOND;
        self.tokens = (self.tokens + refilled).min(Bucket::BURST);
        self.at = now;
        let ok = self.tokens >= 1.0;
        if ok {
            self.tokens -= 1.0;
        }
        ok
    }
}

/// AWS's answer to a request over the rate.
fn throttled() -> Answer {
    Answer {
        status: 400,
        headers: vec![("content-type".to_owned(), "text/xml".to_owned())],
        body: "<ErrorResponse xmlns=\"http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/\">\
               <Error><Type>Sender</Type><Code>ThrottlingException</Code><Message>Rate exceeded</Message></Error>\
               <RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>"
            .to_owned(),
    }
}

#[derive(Default)]
struct Rounds {
    /// When each answer went out, and its round.
    answered: Vec<(Instant, usize)>,
    seen: Seen,
}

impl Rounds {
    /// The round of `call`, arriving now.
    fn arrive(&mut self, call: &Call) -> usize {
        let now = Instant::now();
        let round = 1 + self
            .answered
            .iter()
            .filter(|(at, _)| *at <= now)
            .map(|(_, round)| *round)
            .max()
            .unwrap_or(0);
        self.seen.requests += 1;
        self.seen.rounds = self.seen.rounds.max(round);
        *self
            .seen
            .by_round
            .entry(round)
            .or_default()
            .entry(call.operation().to_owned())
            .or_default() += 1;
        round
    }
}

struct State {
    mode: Mode,
    replay: HashMap<Call, Answer>,
    elb_bucket: Mutex<Bucket>,
    recorded: Mutex<Vec<(Call, Answer)>>,
    rounds: Mutex<Rounds>,
    client: reqwest::Client,
    /// Requests in flight to moto. moto answers one at a time and, slowed by a
    /// thousand environments, stopped accepting connections (connect timed out) when
    /// a plan's hundred reads arrived at once: the rest wait here instead.
    upstream: tokio::sync::Semaphore,
}

/// Requests forwarded to moto at once.
const UPSTREAM_AT_ONCE: usize = 4;

/// A running server on a loopback port.
pub struct Server {
    url: String,
    state: Arc<State>,
}

impl Server {
    /// Starts forwarding to moto (`Mode::Forward`), or replaying `recording`.
    pub async fn start(mode: Mode, recording: Recording) -> Server {
        let state = Arc::new(State {
            mode,
            replay: recording.answers.into_iter().collect(),
            elb_bucket: Mutex::new(Bucket::full()),
            recorded: Mutex::default(),
            rounds: Mutex::default(),
            client: reqwest::Client::new(),
            upstream: tokio::sync::Semaphore::new(UPSTREAM_AT_ONCE),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("its address"));
        let serving = Arc::clone(&state);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = Arc::clone(&serving);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(state.answer(request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server { url, state }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// What was seen since the last call, counting afresh from now (and the ELBv2
    /// bucket full, as after a pause).
    pub fn take_seen(&self) -> Seen {
        *self.state.elb_bucket.lock().expect("the bucket") = Bucket::full();
        std::mem::take(&mut *self.state.rounds.lock().expect("rounds")).seen
    }

    /// The answers forwarded since the last call.
    pub fn take_recording(&self) -> Recording {
        Recording {
            answers: std::mem::take(&mut *self.state.recorded.lock().expect("recording")),
        }
    }
}

impl State {
    async fn answer(&self, request: Request<Incoming>) -> Response<String> {
        let (parts, body) = request.into_parts();
        let call = Call {
            method: parts.method.to_string(),
            uri: parts.uri.to_string(),
            target: parts
                .headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: String::from_utf8(collect(body).await).expect("AWS requests are text"),
        };
        let round = self.rounds.lock().expect("rounds").arrive(&call);
        let answer = match &self.mode {
            Mode::Forward { upstream, latency } => {
                tokio::time::sleep(latency(&call)).await;
                let answer = self.forward(upstream, &parts, &call).await;
                self.recorded
                    .lock()
                    .expect("recording")
                    .push((call.clone(), answer.clone()));
                Some(answer)
            }
            Mode::Replay {
                latency,
                elb_bucket,
            } => {
                let refused = *elb_bucket
                    && call.is_elb()
                    && call.is_read()
                    && !self.elb_bucket.lock().expect("the bucket").take();
                tokio::time::sleep(*latency).await;
                if refused {
                    self.rounds.lock().expect("rounds").seen.throttled += 1;
                    Some(throttled())
                } else {
                    self.replay.get(&call).cloned()
                }
            }
        };
        let mut rounds = self.rounds.lock().expect("rounds");
        rounds.answered.push((Instant::now(), round));
        let Some(answer) = answer else {
            rounds.seen.misses += 1;
            return Response::builder()
                .status(500)
                .body(format!("not in the recording: {call:?}"))
                .expect("a response");
        };
        let mut response = Response::builder().status(answer.status);
        for (name, value) in &answer.headers {
            response = response.header(name, value);
        }
        response.body(answer.body).expect("a response")
    }

    async fn forward(&self, upstream: &str, parts: &http::request::Parts, call: &Call) -> Answer {
        let mut request = self
            .client
            .request(parts.method.clone(), format!("{upstream}{}", call.uri))
            .body(call.body.clone());
        for (name, value) in &parts.headers {
            if name != "host" {
                request = request.header(name, value);
            }
        }
        let _turn = self
            .upstream
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let response = request.send().await.expect("moto answers");
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter(|(name, _)| {
                !matches!(
                    name.as_str(),
                    "content-length" | "transfer-encoding" | "connection" | "date" | "server"
                )
            })
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_owned())))
            .collect();
        let body = response.text().await.expect("moto's answer is text");
        Answer {
            status,
            headers,
            body,
        }
    }
}

/// A request's whole body.
async fn collect(mut body: Incoming) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
        if let Ok(data) = frame.expect("a request body").into_data() {
            out.extend_from_slice(&data);
        }
    }
    out
}
