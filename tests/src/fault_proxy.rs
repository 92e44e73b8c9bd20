//! A fault-injecting HTTP proxy: the network and AWS at their worst, on the wire.
//!
//! A function binary's SDK is pointed at it with the SDK's standard endpoint variables
//! (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`); it forwards every request to moto and,
//! at configured rates per operation, answers instead the way AWS answers when it throttles or
//! fails, delays the call, or drops the connection. Nothing in the SDK or the functions is
//! mocked: the SDK's error parsing, retry classification, backoff and timeouts, and the
//! function's own retry layer, see exactly the bytes they would see from AWS.
//!
//! The operation is the `X-Amz-Target` header of the JSON protocols (`DynamoDB_20120810.PutItem`,
//! `AmazonSQS.SendMessage`), or for the REST protocol of SES v2 its method and path
//! ([`SES_SEND_EMAIL`]); other requests are forwarded untouched.
//!
//! Decisions are drawn from a seeded [`SplitMix64`] in the order requests arrive, so a run is
//! reproducible up to the order in which concurrent requests reach the proxy.
//!
//! For the benchmark it also terminates TLS (with a [`crate::throwaway_ca::ThrowawayCa`]'s
//! certificate, so the functions make the same handshake as with AWS), adds a fixed latency to
//! every request (the network), and records how long each request took as the proxy sees it.
//! It adds no hidden delay of its own: `TCP_NODELAY` on both sides and one write per answer,
//! without which a client's delayed ACK adds ~40 ms that the proxy's own clock never sees.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

/// DynamoDB's conditional write, as the consumer sends it.
pub const PUT_ITEM: &str = "DynamoDB_20120810.PutItem";
/// SQS's send, in the JSON protocol the SDK uses, as the trigger sends it.
pub const SEND_MESSAGE: &str = "AmazonSQS.SendMessage";
pub const ADMIN_GET_USER: &str = "AWSCognitoIdentityProviderService.AdminGetUser";
pub const LIST_USERS: &str = "AWSCognitoIdentityProviderService.ListUsers";
/// SES v2's `SendEmail` (`POST /v2/email/outbound-emails`: REST, no `X-Amz-Target`), named so.
pub const SES_SEND_EMAIL: &str = "SESv2.SendEmail";
/// SES v2's `GetAccount` (`GET /v2/email/account`), which moto does not implement.
pub const SES_GET_ACCOUNT: &str = "SESv2.GetAccount";
/// SES v2's `GetEmailTemplate` (`GET /v2/email/templates/NAME`), which moto does not implement.
pub const SES_GET_EMAIL_TEMPLATE: &str = "SESv2.GetEmailTemplate";
/// SES v2's `GetConfigurationSet` (`GET /v2/email/configuration-sets/NAME`), whose answer from
/// moto the SDK cannot read (moto nests `SendingOptions.SendingEnabled` in an object).
pub const SES_GET_CONFIGURATION_SET: &str = "SESv2.GetConfigurationSet";
/// SES v2's `TestRenderEmailTemplate` (`POST /v2/email/templates/NAME/render`), which moto does
/// not implement.
pub const SES_TEST_RENDER: &str = "SESv2.TestRenderEmailTemplate";
/// IAM's `SimulatePrincipalPolicy` (query protocol: `Action=` in a form body; the proxy names
/// every query-protocol call `Query.ACTION`), which moto does not implement.
pub const IAM_SIMULATE: &str = "Query.SimulatePrincipalPolicy";

/// What the proxy does to one request instead of forwarding it plainly.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// HTTP 400 with the service's throttling error (for DynamoDB
    /// `ProvisionedThroughputExceededException` or `ThrottlingException`, drawn by the seed),
    /// which the SDK classifies as throttling. The request does not reach moto.
    Throttle,
    /// HTTP 500 `InternalServerError` or 503 `ServiceUnavailable`, drawn by the seed. The
    /// request does not reach moto.
    ServerError,
    /// Waits between `min` and `max`, then forwards.
    Latency { min: Duration, max: Duration },
    /// Closes the connection without answering. The request does not reach moto.
    Drop,
    /// Forwards, then closes the connection instead of answering: the call took effect and the
    /// caller cannot know it.
    LoseResponse,
    /// Answers with this status and body instead of forwarding: what AWS answers, as its API
    /// reference documents it, for a call moto does not implement (SES's `GetAccount`, IAM's
    /// policy simulator) or a state moto cannot reach (a paused account, a spent quota). An
    /// error's code goes in `error_type` (`x-amzn-ErrorType`), as the SDK reads it.
    Answer {
        status: u16,
        content_type: &'static str,
        body: String,
        error_type: Option<&'static str>,
    },
}

impl Fault {
    /// The name the proxy counts this fault under.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttle => "throttle",
            Self::ServerError => "5xx",
            Self::Latency { .. } => "latency",
            Self::Drop => "drop",
            Self::LoseResponse => "lost_response",
            Self::Answer { .. } => "answer",
        }
    }
}

/// Which faults to inject, at which rate, for which operation; and the seed.
#[derive(Debug, Clone)]
pub struct FaultPlan {
    seed: u64,
    rules: Vec<(String, Fault, f64)>,
}

impl FaultPlan {
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            rules: Vec::new(),
        }
    }

    /// Injects `fault` into `rate` (0 to 1) of the calls of `operation`. The rates of one
    /// operation are exclusive slices of the same draw, so they must not add up to more than 1.
    pub fn inject(mut self, operation: &str, fault: Fault, rate: f64) -> Self {
        self.rules.push((operation.to_owned(), fault, rate));
        let total: f64 = self
            .rules
            .iter()
            .filter(|(op, _, _)| op == operation)
            .map(|(_, _, r)| r)
            .sum();
        assert!(
            (0.0..=1.0).contains(&rate) && total <= 1.0,
            "fault rates for {operation} must be within 0..=1 and add up to at most 1"
        );
        self
    }
}

/// One successful forwarded call, as a hook sees it.
pub struct Exchange<'a> {
    pub operation: &'a str,
    pub request: &'a [u8],
    pub response: &'a [u8],
}

/// Called after a successful (2xx) forwarded response of an operation, before the response is
/// returned to the caller: a test can act at that exact point (kill the caller, record the
/// request).
pub type Hook = Arc<dyn Fn(&Exchange<'_>) + Send + Sync>;

/// A seeded SplitMix64 (Steele, Lea and Flood, 2014): small, fast, deterministic, and good
/// enough to draw faults and test choices. Not for anything secret.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.next_f64() < p
    }
}

/// What was decided for one request, drawn under one lock so the sequence is the seed's.
struct Decision {
    fault: Option<Fault>,
    /// A second draw, for the variant of the fault (which error, how long).
    variant: f64,
}

/// How the proxy listens and what it adds to every request, beyond the fault plan.
#[derive(Clone, Default)]
pub struct ProxyOptions {
    /// Terminate TLS with this configuration (the endpoint is then `https://`).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Waited before forwarding every request: the network's round trip.
    pub added_latency: Duration,
}

/// How long one forwarded request took as the proxy sees it: from the request read whole to the
/// answer ready to write (the added latency and moto's time).
#[derive(Debug, Clone)]
pub struct Timing {
    pub operation: String,
    /// When the request had been read whole.
    pub received: Instant,
    pub elapsed: Duration,
}

struct State {
    rules: Vec<(String, Fault, f64)>,
    added_latency: Duration,
    timings: Mutex<Vec<Timing>>,
    /// Connections accepted (TLS handshakes, when the proxy terminates TLS).
    connections: std::sync::atomic::AtomicU64,
    rng: Mutex<SplitMix64>,
    injected: Mutex<BTreeMap<&'static str, u64>>,
    forwarded: Mutex<BTreeMap<String, u64>>,
    hooks: RwLock<Vec<(String, Hook)>>,
    upstream: watch::Receiver<Option<Uri>>,
    client: Client<HttpConnector, Full<Bytes>>,
}

/// The proxy, on a free 127.0.0.1 port. Dropping it stops it and every connection it holds.
pub struct FaultProxy {
    address: SocketAddr,
    scheme: &'static str,
    state: Arc<State>,
    upstream: watch::Sender<Option<Uri>>,
    server: tokio::task::JoinHandle<()>,
}

/// The error that makes hyper close a connection without writing a response.
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by the fault proxy")]
struct DropConnection;

impl FaultProxy {
    /// Starts the proxy. Requests wait until [`FaultProxy::forward_to`] names the upstream, so
    /// the proxy can be handed to a function before moto's port is known.
    pub async fn start(plan: FaultPlan) -> Result<Self> {
        Self::start_with(plan, ProxyOptions::default()).await
    }

    /// [`FaultProxy::start`], listening and delaying as `options` say.
    pub async fn start_with(plan: FaultPlan, options: ProxyOptions) -> Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind the fault proxy's port")?;
        let address = listener.local_addr()?;
        let (upstream, upstream_rx) = watch::channel(None);
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let state = Arc::new(State {
            rules: plan.rules,
            added_latency: options.added_latency,
            timings: Mutex::new(Vec::new()),
            connections: std::sync::atomic::AtomicU64::new(0),
            rng: Mutex::new(SplitMix64::new(plan.seed)),
            injected: Mutex::new(BTreeMap::new()),
            forwarded: Mutex::new(BTreeMap::new()),
            hooks: RwLock::new(Vec::new()),
            upstream: upstream_rx,
            client: Client::builder(TokioExecutor::new()).build(connector),
        });
        let scheme = if options.tls.is_some() { "https" } else { "http" };
        let acceptor = options.tls.map(TlsAcceptor::from);
        let server = tokio::spawn(accept_loop(listener, acceptor, Arc::clone(&state)));
        Ok(Self {
            address,
            scheme,
            state,
            upstream,
            server,
        })
    }

    /// Where the functions' SDK should send its requests (`http://127.0.0.1:PORT`, or
    /// `https://` when the proxy terminates TLS).
    pub fn endpoint(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    /// Sets where requests are forwarded (moto's endpoint).
    pub fn forward_to(&self, endpoint: &str) -> Result<()> {
        let uri: Uri = endpoint
            .parse()
            .with_context(|| format!("not an endpoint: {endpoint}"))?;
        self.upstream.send_replace(Some(uri));
        Ok(())
    }

    /// Calls `hook` after every successful forwarded response of `operation`.
    pub fn after_success(&self, operation: &str, hook: impl Fn(&Exchange<'_>) + Send + Sync + 'static) {
        self.state
            .hooks
            .write()
            .unwrap()
            .push((operation.to_owned(), Arc::new(hook)));
    }

    /// How many faults of each kind were injected so far.
    pub fn injected(&self) -> BTreeMap<&'static str, u64> {
        self.state.injected.lock().unwrap().clone()
    }

    /// How many requests of each operation were forwarded so far (faults that stop a request
    /// before it is forwarded are not counted).
    pub fn forwarded(&self) -> BTreeMap<String, u64> {
        self.state.forwarded.lock().unwrap().clone()
    }

    /// Connections accepted so far: with TLS, each is one handshake.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Takes the timings of the requests forwarded since the last call.
    pub fn take_timings(&self) -> Vec<Timing> {
        std::mem::take(&mut *self.state.timings.lock().unwrap())
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The accept loop owns the connections' tasks: aborting it drops them all.
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, tls: Option<TlsAcceptor>, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Out of file descriptors, most likely: wait for some to be released.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        // Small answers go out at once, not after the caller's delayed ACK.
        let _ = stream.set_nodelay(true);
        state
            .connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let state = Arc::clone(&state);
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(stream, state).await;
                    }
                }
                None => serve(stream, state).await,
            }
        });
        // Reap finished connections so the set does not grow with every one ever served.
        while connections.try_join_next().is_some() {}
    }
}

async fn serve(stream: impl AsyncRead + AsyncWrite + Unpin + Send + 'static, state: Arc<State>) {
    let service = hyper::service::service_fn(move |request| handle(Arc::clone(&state), request));
    // An error here is a dropped connection (ours or the caller's): nothing to report.
    let _ = hyper::server::conn::http1::Builder::new()
        // Head and body flattened into one buffer: one write per answer.
        .writev(false)
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

async fn handle(
    state: Arc<State>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, DropConnection> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map_err(|_| DropConnection)?.to_bytes();
    let received = Instant::now();
    let operation = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let operation = match operation.as_str() {
        "" => rest_or_query_operation(&parts.method, parts.uri.path(), &body).unwrap_or_default(),
        _ => operation,
    };
    let decision = state.decide(&operation);
    if let Some(fault) = &decision.fault {
        *state.injected.lock().unwrap().entry(fault.kind()).or_default() += 1;
    }
    match &decision.fault {
        Some(Fault::Throttle) => return Ok(throttled(&operation, decision.variant).map(Full::new)),
        Some(Fault::ServerError) => return Ok(server_error(&operation, decision.variant).map(Full::new)),
        Some(Fault::Drop) => return Err(DropConnection),
        Some(Fault::Answer {
            status,
            content_type,
            body,
            error_type,
        }) => {
            let mut answer = Response::builder()
                .status(*status)
                .header(CONTENT_TYPE, *content_type)
                .header("x-amzn-RequestId", uuid::Uuid::new_v4().to_string());
            if let Some(code) = error_type {
                answer = answer.header("x-amzn-ErrorType", *code);
            }
            return Ok(answer
                .body(Full::new(Bytes::from(body.clone())))
                .expect("a valid response"));
        }
        Some(Fault::Latency { min, max }) => {
            let extra = max.saturating_sub(*min).mul_f64(decision.variant);
            tokio::time::sleep(*min + extra).await;
        }
        Some(Fault::LoseResponse) | None => {}
    }
    if !state.added_latency.is_zero() {
        tokio::time::sleep(state.added_latency).await;
    }

    let response = state.forward(parts, body.clone()).await;
    state.timings.lock().unwrap().push(Timing {
        operation: operation.clone(),
        received,
        elapsed: received.elapsed(),
    });
    if !operation.is_empty() {
        *state
            .forwarded
            .lock()
            .unwrap()
            .entry(operation.clone())
            .or_default() += 1;
    }
    if decision.fault == Some(Fault::LoseResponse) {
        return Err(DropConnection);
    }
    if response.status().is_success() {
        let exchange = Exchange {
            operation: &operation,
            request: &body,
            response: response.body(),
        };
        for hook in state.hooks_for(&operation) {
            hook(&exchange);
        }
    }
    Ok(response.map(Full::new))
}

impl State {
    fn hooks_for(&self, operation: &str) -> Vec<Hook> {
        let hooks = self.hooks.read().unwrap();
        hooks
            .iter()
            .filter(|(op, _)| op == operation)
            .map(|(_, hook)| Arc::clone(hook))
            .collect()
    }

    fn decide(&self, operation: &str) -> Decision {
        let mut rng = self.rng.lock().unwrap();
        let (draw, variant) = (rng.next_f64(), rng.next_f64());
        let mut threshold = 0.0;
        let fault = self
            .rules
            .iter()
            .filter(|(op, _, _)| op == operation)
            .find(|(_, _, rate)| {
                threshold += rate;
                draw < threshold
            })
            .map(|(_, fault, _)| fault.clone());
        Decision { fault, variant }
    }

    /// Sends the request on to the upstream, as it came. An upstream that cannot be reached
    /// answers 502, which the SDK retries like any 5xx.
    async fn forward(&self, mut parts: hyper::http::request::Parts, body: Bytes) -> Response<Bytes> {
        let mut upstream = self.upstream.clone();
        let Ok(base) = upstream
            .wait_for(Option::is_some)
            .await
            .map(|u| u.clone().unwrap_or_default())
        else {
            return plain(StatusCode::BAD_GATEWAY, "the fault proxy has no upstream");
        };
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        let Ok(uri) = format!("{}{path}", base.to_string().trim_end_matches('/')).parse::<Uri>() else {
            return plain(StatusCode::BAD_GATEWAY, "cannot build the upstream URI");
        };
        if let Some(authority) = uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            parts.headers.insert(HOST, authority);
        }
        parts.uri = uri;
        parts.headers.remove(CONTENT_LENGTH);
        let request = Request::from_parts(parts, Full::new(body));
        let answer = match self.client.request(request).await {
            Ok(answer) => answer,
            Err(err) => return plain(StatusCode::BAD_GATEWAY, &format!("upstream unreachable: {err}")),
        };
        let (mut parts, body) = answer.into_parts();
        let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
            return plain(StatusCode::BAD_GATEWAY, "upstream closed mid-response");
        };
        // The body is re-sent whole: hyper sets its length.
        for hop in [
            CONTENT_LENGTH,
            hyper::header::TRANSFER_ENCODING,
            hyper::header::CONNECTION,
        ] {
            parts.headers.remove(hop);
        }
        Response::from_parts(parts, body)
    }
}

/// The name of a call without `X-Amz-Target`: SES v2's REST operations this project makes, by
/// method and path, and a query-protocol call (IAM's, CloudFormation's), by the `Action` of its
/// form body.
fn rest_or_query_operation(method: &hyper::Method, path: &str, body: &[u8]) -> Option<String> {
    use hyper::Method;
    let templates = path.strip_prefix("/v2/email/templates/");
    let name = match (method, path) {
        (&Method::POST, "/v2/email/outbound-emails") => SES_SEND_EMAIL,
        (&Method::GET, "/v2/email/account") => SES_GET_ACCOUNT,
        (&Method::GET, _) if path.starts_with("/v2/email/configuration-sets/") => SES_GET_CONFIGURATION_SET,
        (&Method::POST, _) if templates.is_some_and(|rest| rest.ends_with("/render")) => SES_TEST_RENDER,
        (&Method::GET, _) if templates.is_some_and(|rest| !rest.contains('/')) => SES_GET_EMAIL_TEMPLATE,
        (&Method::POST, "/") => {
            let form = std::str::from_utf8(body).ok()?;
            let action = form.split('&').find_map(|pair| pair.strip_prefix("Action="))?;
            return Some(format!("Query.{action}"));
        }
        _ => return None,
    };
    Some(name.to_owned())
}

/// The service's throttling answer for `operation`.
fn throttled(operation: &str, variant: f64) -> Response<Bytes> {
    if operation == SES_SEND_EMAIL {
        // SES's answer when the account's sending rate is exceeded.
        return aws_error(
            operation,
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequestsException",
            "Maximum sending rate exceeded.",
        );
    }
    let (code, message) = if operation.starts_with(COGNITO) {
        // Cognito's answer when a request-rate quota (UserRead, UserList) is exceeded.
        ("TooManyRequestsException", "Rate exceeded")
    } else if !operation.starts_with("DynamoDB_") {
        ("ThrottlingException", "Rate exceeded")
    } else if variant < 0.5 {
        (
            "ProvisionedThroughputExceededException",
            "The level of configured provisioned throughput for the table was exceeded. Consider \
             increasing your provisioning level with the UpdateTable API.",
        )
    } else {
        (
            "ThrottlingException",
            "Rate of requests exceeds the allowed throughput.",
        )
    };
    aws_error(operation, StatusCode::BAD_REQUEST, code, message)
}

/// The service's 500 or 503 answer for `operation`.
fn server_error(operation: &str, variant: f64) -> Response<Bytes> {
    if variant < 0.5 {
        aws_error(
            operation,
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "Internal server error",
        )
    } else {
        aws_error(
            operation,
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Service unavailable",
        )
    }
}

/// An AWS JSON-protocol error: the namespaced `__type` in the body and the bare code in
/// `x-amzn-ErrorType`, which is what the SDK reads to classify it.
/// The `X-Amz-Target` prefix of Cognito user pool operations (JSON 1.1 protocol).
const COGNITO: &str = "AWSCognitoIdentityProviderService.";

fn aws_error(operation: &str, status: StatusCode, code: &str, message: &str) -> Response<Bytes> {
    let namespace = if operation.starts_with("DynamoDB_") {
        "com.amazonaws.dynamodb.v20120810"
    } else if operation.starts_with(COGNITO) {
        "com.amazonaws.cognitoidentityprovider"
    } else if operation.starts_with("SESv2.") {
        "com.amazonaws.sesv2"
    } else {
        "com.amazonaws.sqs"
    };
    let content_type = if operation.starts_with(COGNITO) {
        "application/x-amz-json-1.1"
    } else if operation.starts_with("SESv2.") {
        "application/json"
    } else {
        "application/x-amz-json-1.0"
    };
    let body = serde_json::json!({ "__type": format!("{namespace}#{code}"), "message": message });
    Response::builder()
        .status(status)
        .header(CONTENT_TYPE, content_type)
        .header("x-amzn-ErrorType", code)
        .header("x-amzn-RequestId", uuid::Uuid::new_v4().to_string())
        .body(Bytes::from(body.to_string()))
        .expect("a valid response")
}

fn plain(status: StatusCode, text: &str) -> Response<Bytes> {
    Response::builder()
        .status(status)
        .body(Bytes::from(text.to_owned()))
        .expect("a valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::AttributeValue;

    /// An upstream that answers every request with its own body: enough to see what the proxy
    /// forwards. (The proxy's own answers need no upstream at all.)
    async fn echo_upstream() -> String {
        let app = axum::Router::new().fallback(|body: Bytes| async move { body });
        let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}")
    }

    async fn call(
        proxy: &FaultProxy,
        operation: &str,
        body: &str,
    ) -> Result<Response<Bytes>, hyper_util::client::legacy::Error> {
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
        let request = Request::post(proxy.endpoint())
            .header("x-amz-target", operation)
            .body(Full::new(Bytes::from(body.to_owned())))
            .unwrap();
        let (parts, body) = client.request(request).await?.into_parts();
        Ok(Response::from_parts(
            parts,
            body.collect().await.unwrap().to_bytes(),
        ))
    }

    #[tokio::test]
    async fn forwards_unchanged_and_calls_the_hook_after_a_success() {
        let proxy = FaultProxy::start(FaultPlan::new(1)).await.unwrap();
        proxy.forward_to(&echo_upstream().await).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&seen);
        proxy.after_success(PUT_ITEM, move |exchange| {
            record
                .lock()
                .unwrap()
                .push((exchange.request.to_vec(), exchange.response.to_vec()));
        });

        let answer = call(&proxy, PUT_ITEM, "{\"a\":1}").await.unwrap();
        assert_eq!(
            (answer.status(), answer.body().as_ref()),
            (StatusCode::OK, &b"{\"a\":1}"[..])
        );
        call(&proxy, SEND_MESSAGE, "other operation: no hook")
            .await
            .unwrap();
        assert_eq!(
            *seen.lock().unwrap(),
            [(b"{\"a\":1}".to_vec(), b"{\"a\":1}".to_vec())]
        );
        assert_eq!(proxy.forwarded()[PUT_ITEM], 1);
        assert!(proxy.injected().is_empty());
    }

    #[tokio::test]
    async fn terminates_tls_adds_the_latency_and_times_and_counts_what_it_forwards() {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;

        let dir = crate::paths::log_dir("unit-tls-proxy");
        let ca = crate::throwaway_ca::ThrowawayCa::create(&dir).expect("openssl makes the CA");
        assert!(
            ca.bundle_certificates > 1,
            "the trust bundle holds the system bundle too"
        );
        let latency = Duration::from_millis(30);
        let proxy = FaultProxy::start_with(
            FaultPlan::new(3),
            ProxyOptions {
                tls: Some(Arc::new(ca.server_config().unwrap())),
                added_latency: latency,
            },
        )
        .await
        .unwrap();
        proxy.forward_to(&echo_upstream().await).unwrap();
        let endpoint = proxy.endpoint();
        assert!(endpoint.starts_with("https://127.0.0.1:"), "{endpoint}");

        // A client that trusts only the throw-away root, verifying the proxy's chain for
        // 127.0.0.1 as any TLS client would.
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&ca.root).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = tokio::net::TcpStream::connect(endpoint.trim_start_matches("https://"))
            .await
            .unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap(), tcp)
            .await
            .expect("the proxy's chain verifies against the throw-away root");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .unwrap();
        tokio::spawn(connection);
        for body in ["first", "second"] {
            let request = Request::post("/")
                .header(HOST, "127.0.0.1")
                .header("x-amz-target", SEND_MESSAGE)
                .body(Full::new(Bytes::from(body)))
                .unwrap();
            let answer = sender.send_request(request).await.unwrap();
            assert_eq!(answer.status(), StatusCode::OK);
            assert_eq!(answer.into_body().collect().await.unwrap().to_bytes(), body);
        }

        assert_eq!(proxy.connections(), 1, "both requests on one TLS connection");
        let timings = proxy.take_timings();
        assert_eq!(timings.len(), 2);
        assert!(
            timings
                .iter()
                .all(|t| t.operation == SEND_MESSAGE && t.elapsed >= latency),
            "{timings:?}"
        );
        assert!(proxy.take_timings().is_empty(), "taken timings are gone");
    }

    #[tokio::test]
    async fn drop_closes_the_connection_without_an_answer_and_forwards_nothing() {
        let proxy = FaultProxy::start(FaultPlan::new(2).inject(SEND_MESSAGE, Fault::Drop, 1.0))
            .await
            .unwrap();
        proxy.forward_to(&echo_upstream().await).unwrap();
        let err = call(&proxy, SEND_MESSAGE, "{}").await.unwrap_err();
        assert!(format!("{err:?}").contains("IncompleteMessage"), "{err:?}");
        assert_eq!(proxy.injected()["drop"], 1);
        assert!(proxy.forwarded().is_empty());
    }

    #[tokio::test]
    async fn the_same_seed_injects_the_same_faults_in_the_same_order() {
        let plan = || {
            FaultPlan::new(42).inject(PUT_ITEM, Fault::Throttle, 0.3).inject(
                PUT_ITEM,
                Fault::ServerError,
                0.2,
            )
        };
        let mut runs = Vec::new();
        for _ in 0..2 {
            let proxy = FaultProxy::start(plan()).await.unwrap();
            proxy.forward_to(&echo_upstream().await).unwrap();
            let mut statuses = Vec::new();
            for _ in 0..40 {
                statuses.push(call(&proxy, PUT_ITEM, "{}").await.unwrap().status().as_u16());
            }
            runs.push(statuses);
        }
        assert_eq!(runs[0], runs[1]);
        for status in [200, 400, 500, 503] {
            assert!(runs[0].contains(&status), "{status} never drawn in {:?}", runs[0]);
        }
    }

    /// The real SDK, not a parser of ours, decides what the throttle is: a modelled
    /// `ProvisionedThroughputExceededException` or a `ThrottlingException` code, retried by the
    /// standard retry mode like any throttling.
    #[tokio::test]
    async fn the_sdk_reads_the_throttle_as_dynamodb_throttling_and_retries_it() {
        let proxy = FaultProxy::start(FaultPlan::new(3).inject(PUT_ITEM, Fault::Throttle, 1.0))
            .await
            .unwrap();
        let sdk = crate::pipeline::local_sdk_config(&proxy.endpoint()).await;
        let config = aws_sdk_dynamodb::config::Builder::from(&sdk)
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(1)),
            )
            .build();
        let client = aws_sdk_dynamodb::Client::from_conf(config);
        for _ in 0..4 {
            let err = client
                .put_item()
                .table_name("t")
                .item("k", AttributeValue::S("v".into()))
                .send()
                .await
                .unwrap_err()
                .into_service_error();
            let code = aws_sdk_dynamodb::error::ProvideErrorMetadata::code(&err);
            assert!(
                matches!(err, PutItemError::ProvisionedThroughputExceededException(_))
                    || code == Some("ThrottlingException"),
                "{err:?}"
            );
        }
        assert_eq!(proxy.injected()["throttle"], 12, "three attempts per call");
        assert!(proxy.forwarded().is_empty());
    }
}
