//! Shared set-up for file tests: a local HTTP file server (axum on 127.0.0.1:0), the S3
//! API server the test command starts (moto on 127.0.0.1:9000 by default), presigned PUT
//! and POST targets on it, and checksums.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a panic is how a test fails"
)]

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tether_egress::{Egress, EgressConfig, Resolve, SystemResolver};
use tether_worker_host::files::{S3Settings, S3Store, Secret};

/// The local file server: GET serves what was put in `files`; PUT records bodies in
/// `received`; `/redirect/{to}` answers 302 to `to` (URL-decoded).
#[derive(Clone)]
pub struct FileServer {
    pub addr: SocketAddr,
    pub files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    pub received: Arc<Mutex<HashMap<String, Vec<u8>>>>,
}

impl FileServer {
    pub async fn start() -> Self {
        let files = Arc::new(Mutex::new(HashMap::new()));
        let received = Arc::new(Mutex::new(HashMap::new()));
        let state = (files.clone(), received.clone());
        let app = Router::new()
            .route("/files/{name}", get(serve).put(receive))
            .route("/stream/{bytes}", get(stream_bytes))
            .route("/redirect", get(redirect))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            files,
            received,
        }
    }

    pub fn put(&self, name: &str, bytes: &[u8]) {
        self.files
            .lock()
            .unwrap()
            .insert(name.into(), bytes.to_vec());
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The allow-list entry admitting this server.
    pub fn allow_entry(&self) -> String {
        self.addr.to_string()
    }
}

type ServerState = (
    Arc<Mutex<HashMap<String, Vec<u8>>>>,
    Arc<Mutex<HashMap<String, Vec<u8>>>>,
);

async fn serve(State((files, _)): State<ServerState>, Path(name): Path<String>) -> Response {
    match files.lock().unwrap().get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn receive(
    State((_, received)): State<ServerState>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> StatusCode {
    received.lock().unwrap().insert(name, body.to_vec());
    StatusCode::OK
}

/// `bytes` zero bytes, streamed without a Content-Length.
async fn stream_bytes(Path(bytes): Path<usize>) -> Response {
    let chunk = vec![0u8; 64 * 1024];
    let chunks = bytes.div_ceil(chunk.len());
    let last = bytes - (chunks.saturating_sub(1)) * chunk.len();
    let stream = futures::stream::iter((0..chunks).map(move |i| {
        let n = if i + 1 == chunks { last } else { chunk.len() };
        Ok::<_, std::io::Error>(axum::body::Bytes::from(chunk[..n].to_vec()))
    }));
    Body::from_stream(stream).into_response()
}

async fn redirect(axum::extract::RawQuery(query): axum::extract::RawQuery) -> Response {
    let to = query.unwrap_or_default();
    let to = to.strip_prefix("to=").unwrap_or(&to).to_owned();
    (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
}

/// Resolves a few fixed names (e.g. one that points at a private address) and asks the
/// system for the rest.
#[derive(Debug)]
pub struct TestResolver(pub HashMap<String, Vec<std::net::IpAddr>>);

impl Resolve for TestResolver {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> futures::future::BoxFuture<'a, std::io::Result<Vec<std::net::IpAddr>>> {
        match self.0.get(host) {
            Some(addrs) => {
                let addrs = addrs.clone();
                Box::pin(async move { Ok(addrs) })
            }
            None => SystemResolver.resolve(host, port),
        }
    }
}

/// Egress admitting `allow` (comma-separated), with `internal.example` resolving to a
/// private address.
pub fn egress(allow: &str) -> Egress {
    let config = EgressConfig {
        allow: allow.parse().expect("allow-list"),
        ..EgressConfig::default()
    };
    let names = HashMap::from([(
        "internal.example".to_owned(),
        vec!["10.20.30.40".parse().unwrap()],
    )]);
    Egress::with_resolver(config, Arc::new(TestResolver(names)))
}

/// The S3 API server under test.
pub fn s3_endpoint() -> String {
    std::env::var("TETHER_TEST_S3_ENDPOINT").unwrap_or_else(|_| "http://127.0.0.1:9000".into())
}

/// `host:port` of the S3 endpoint, for the allow-list.
pub fn s3_allow_entry() -> String {
    let url = url::Url::parse(&s3_endpoint()).expect("endpoint URL");
    format!(
        "{}:{}",
        url.host_str().unwrap(),
        url.port_or_known_default().unwrap()
    )
}

pub fn s3_settings() -> S3Settings {
    S3Settings {
        endpoint: Some(s3_endpoint()),
        region: "us-east-1".into(),
        access_key_id: "testing".into(),
        secret_access_key: Secret::new("testing"),
        force_path_style: true,
        part_size: 8 * 1024 * 1024,
    }
}

/// A fresh bucket on the S3 server. Fails the test clearly when the server is down.
pub async fn bucket(store: &S3Store, test: &str) -> String {
    let name = format!(
        "t-{test}-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let created = tokio::time::timeout(
        Duration::from_secs(20),
        store.client().create_bucket().bucket(&name).send(),
    )
    .await;
    match created {
        Ok(Ok(_)) => name,
        other => panic!(
            "the S3 API server at {} is not reachable ({other:?}); the test command starts it \
             (scripts/install-deps.sh + moto_server -H 127.0.0.1 -p 9000)",
            s3_endpoint()
        ),
    }
}

pub async fn get_object(store: &S3Store, bucket: &str, key: &str) -> (Vec<u8>, Option<String>) {
    let object = store
        .client()
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .expect("get_object");
    let etag = object.e_tag().map(str::to_owned);
    let bytes = object
        .body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec();
    (bytes, etag)
}

/// A presigned PUT URL for `bucket/key`.
pub async fn presigned_put(store: &S3Store, bucket: &str, key: &str) -> String {
    let config =
        aws_sdk_s3::presigning::PresigningConfig::expires_in(Duration::from_secs(600)).unwrap();
    let request = store
        .client()
        .put_object()
        .bucket(bucket)
        .key(key)
        .presigned(config)
        .await
        .expect("presign");
    request.uri().to_owned()
}

/// A presigned POST (browser-form upload) for `bucket/key`: the URL and the form fields,
/// signed with SigV4 as S3 documents it.
pub fn presigned_post(bucket: &str, key: &str) -> (String, BTreeMap<String, String>) {
    let settings = s3_settings();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (date, amz_date) = ymd(now);
    let credential = format!(
        "{}/{date}/us-east-1/s3/aws4_request",
        settings.access_key_id
    );
    let expiration = iso8601(now + 600);
    let policy = serde_json::json!({
        "expiration": expiration,
        "conditions": [
            {"bucket": bucket}, {"key": key},
            {"x-amz-algorithm": "AWS4-HMAC-SHA256"},
            {"x-amz-credential": credential},
            {"x-amz-date": amz_date},
        ]
    });
    let policy_b64 = base64::engine::general_purpose::STANDARD.encode(policy.to_string());
    let sign = |key: &[u8], msg: &str| {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(msg.as_bytes());
        mac.finalize().into_bytes().to_vec()
    };
    let k = sign(
        format!("AWS4{}", settings.secret_access_key.expose()).as_bytes(),
        &date,
    );
    let k = sign(&k, "us-east-1");
    let k = sign(&k, "s3");
    let k = sign(&k, "aws4_request");
    let signature = hex(&sign(&k, &policy_b64));
    let fields = BTreeMap::from([
        ("key".to_owned(), key.to_owned()),
        ("policy".to_owned(), policy_b64),
        ("x-amz-algorithm".to_owned(), "AWS4-HMAC-SHA256".to_owned()),
        ("x-amz-credential".to_owned(), credential),
        ("x-amz-date".to_owned(), amz_date),
        ("x-amz-signature".to_owned(), signature),
    ]);
    (format!("{}/{bucket}", s3_endpoint()), fields)
}

fn civil(secs: u64) -> (i64, u32, u32, u64) {
    // Days since the epoch → proleptic Gregorian date (Howard Hinnant's algorithm).
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs % 86_400)
}

fn ymd(secs: u64) -> (String, String) {
    let (y, m, d, s) = civil(secs);
    let date = format!("{y:04}{m:02}{d:02}");
    let stamp = format!("{date}T{:02}{:02}{:02}Z", s / 3600, (s / 60) % 60, s % 60);
    (date, stamp)
}

fn iso8601(secs: u64) -> String {
    let (y, m, d, s) = civil(secs);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Deterministic pseudo-random bytes (xorshift), so large test files do not compress.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
