//! The webhook courier against a real HTTP receiver (an axum server on 127.0.0.1) and the
//! in-memory store — and, for restarts, a real Redis (`TETHER_TEST_REDIS_URL`).
#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on the first surprise"
)]

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tether_dispatcher::webhook::{AllowList, Courier, RetrySchedule, WebhookConfig, WebhookSecret};
use tether_protocol::{
    DeliveryState, ExecuteSpec, Job, JobId, JobKind, JobRecord, JobStatus, UnixMillis, UserUuid,
    WebhookDelivery,
};
use tether_transport::memory::MemoryStore;
use tether_transport::{JobStore, RecordUpdate};
use tokio_util::sync::CancellationToken;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A receiver that answers `fail_with` to the first `failures` requests, then 204.
#[derive(Clone)]
struct Receiver {
    hits: Arc<AtomicUsize>,
    failures: usize,
    fail_with: StatusCode,
    seen: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

impl Receiver {
    async fn start(failures: usize, fail_with: StatusCode) -> (Self, String) {
        let receiver = Self {
            hits: Arc::new(AtomicUsize::new(0)),
            failures,
            fail_with,
            seen: Arc::new(Mutex::new(Vec::new())),
        };
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(receiver.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (receiver, url)
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.seen.lock().unwrap().push((headers, body));
    if r.hits.fetch_add(1, Ordering::SeqCst) < r.failures {
        r.fail_with
    } else {
        StatusCode::NO_CONTENT
    }
}

fn config(allow: &str) -> WebhookConfig {
    let mut config = WebhookConfig::new(
        WebhookSecret::parse(SECRET).unwrap(),
        allow.parse::<AllowList>().unwrap(),
    );
    config.retry = RetrySchedule {
        initial: Duration::from_millis(100),
        max_interval: Duration::from_millis(400),
        ..RetrySchedule::default()
    };
    config.poll_interval = Duration::from_millis(20);
    config.lease = Duration::from_secs(5);
    config
}

fn allow_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .trim_end_matches("/hook")
        .to_owned()
}

/// A finished job with a callback, as the worker would leave it.
async fn finished_job(store: &dyn JobStore, url: &str) -> JobId {
    let job = Job {
        id: JobId::new(),
        user_uuid: UserUuid::random(),
        seq: 1,
        kind: JobKind::Execute(ExecuteSpec {
            code: "1".into(),
            timeout_ms: 1000,
        }),
        submitted_at: UnixMillis::now(),
        callback_url: Some(url.to_owned()),
        metadata: Some(serde_json::json!({"ticket": 7})),
    };
    let id = job.id;
    store.insert(&JobRecord::queued(job, None)).await.unwrap();
    store
        .update(
            id,
            RecordUpdate::Finished {
                status: JobStatus::Succeeded,
                result: None,
                error: None,
                at: UnixMillis::now(),
            },
        )
        .await
        .unwrap();
    id
}

async fn settled(store: &dyn JobStore, id: JobId, within: Duration) -> WebhookDelivery {
    let deadline = Instant::now() + within;
    loop {
        let delivery = store.delivery(id).await.unwrap().expect("queued");
        if delivery.state != DeliveryState::Pending || Instant::now() > deadline {
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn start(store: Arc<dyn JobStore>, config: WebhookConfig) -> CancellationToken {
    let stop = CancellationToken::new();
    tokio::spawn(Courier::new(store, config).run(stop.clone()));
    stop
}

#[tokio::test]
async fn retries_5xx_then_delivers_signed_with_one_id() {
    let (receiver, url) = Receiver::start(3, StatusCode::INTERNAL_SERVER_ERROR).await;
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::default());
    let stop = start(store.clone(), config(&allow_of(&url)));
    let id = finished_job(store.as_ref(), &url).await;
    let delivery = settled(store.as_ref(), id, Duration::from_secs(20)).await;
    stop.cancel();

    assert_eq!(delivery.state, DeliveryState::Delivered, "{delivery:?}");
    let codes: Vec<_> = delivery.attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, vec![Some(500), Some(500), Some(500), Some(204)]);
    let seen = receiver.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4);
    let secret = WebhookSecret::parse(SECRET).unwrap();
    let wrong = WebhookSecret::parse("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    for (headers, body) in &seen {
        let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
        assert_eq!(header("webhook-id"), delivery.webhook_id);
        let ts: i64 = header("webhook-timestamp").parse().unwrap();
        assert!(secret.verify(&delivery.webhook_id, ts, body, &header("webhook-signature")));
        assert!(!wrong.verify(&delivery.webhook_id, ts, body, &header("webhook-signature")));
        let view: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(view["job_id"], id.to_string());
        assert_eq!(view["status"], "succeeded");
        assert_eq!(view["metadata"]["ticket"], 7);
    }
    // Attempts are spaced by the backoff (jittered 50–150 ms, then 100–300, 200–600).
    let gaps: Vec<u64> = delivery
        .attempts
        .windows(2)
        .map(|w| w[1].at.0 - w[0].at.0)
        .collect();
    eprintln!("webhook retry gaps (ms): {gaps:?}");
    assert!(gaps.iter().all(|g| *g >= 40), "{gaps:?}");
}

#[tokio::test]
async fn a_4xx_is_final_and_the_period_ends_retries() {
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::default());
    let (gone, gone_url) = Receiver::start(usize::MAX, StatusCode::GONE).await;
    let (down, down_url) = Receiver::start(usize::MAX, StatusCode::SERVICE_UNAVAILABLE).await;
    let mut config = config(&format!("{},{}", allow_of(&gone_url), allow_of(&down_url)));
    config.retry.max_period = Duration::from_millis(600);
    let stop = start(store.clone(), config);

    let refused = finished_job(store.as_ref(), &gone_url).await;
    let given_up = finished_job(store.as_ref(), &down_url).await;
    let refused = settled(store.as_ref(), refused, Duration::from_secs(10)).await;
    let given_up = settled(store.as_ref(), given_up, Duration::from_secs(10)).await;
    stop.cancel();

    assert_eq!(refused.state, DeliveryState::Failed);
    assert_eq!(refused.attempts.len(), 1);
    assert_eq!(gone.hits(), 1);
    assert_eq!(given_up.state, DeliveryState::Failed);
    assert!(given_up.attempts.len() >= 2, "{given_up:?}");
    assert_eq!(down.hits(), given_up.attempts.len());
    assert!(given_up.failure.unwrap().starts_with("gave up after"));
}

/// The address is checked again at delivery time: a URL that is not (or no longer)
/// allowed is never called.
#[tokio::test]
async fn delivery_time_egress_check_refuses_internal_targets() {
    let (receiver, url) = Receiver::start(0, StatusCode::OK).await;
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::default());
    let stop = start(store.clone(), config(""));
    let named = url.replace("127.0.0.1", "localhost");
    let a = finished_job(store.as_ref(), &url).await;
    let b = finished_job(store.as_ref(), &named).await;
    let a = settled(store.as_ref(), a, Duration::from_secs(10)).await;
    let b = settled(store.as_ref(), b, Duration::from_secs(10)).await;
    stop.cancel();
    for d in [a, b] {
        assert_eq!(d.state, DeliveryState::Failed);
        let error = d.attempts[0].error.clone().unwrap();
        assert!(error.contains("loopback"), "{error}");
    }
    assert_eq!(receiver.hits(), 0);
}

/// Two delivery loops on one store: every webhook arrives exactly once.
#[tokio::test]
async fn two_couriers_never_double_send() {
    let (receiver, url) = Receiver::start(0, StatusCode::OK).await;
    let store: Arc<dyn JobStore> = Arc::new(MemoryStore::default());
    let stops = [
        start(store.clone(), config(&allow_of(&url))),
        start(store.clone(), config(&allow_of(&url))),
    ];
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(finished_job(store.as_ref(), &url).await);
    }
    for id in &ids {
        let d = settled(store.as_ref(), *id, Duration::from_secs(20)).await;
        assert_eq!(d.state, DeliveryState::Delivered);
        assert_eq!(d.attempts.len(), 1);
    }
    for stop in stops {
        stop.cancel();
    }
    assert_eq!(receiver.hits(), 40);
    let mut seen: Vec<String> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 40);
}

/// Deliveries live in Redis: a dispatcher that stops mid-retry is replaced by another
/// process's loop, which finishes the delivery with the same webhook id.
#[tokio::test]
async fn deliveries_survive_a_dispatcher_restart_on_redis() {
    use tether_transport::redis::{RedisConfig, RedisPool, RedisStore};
    let url = std::env::var("TETHER_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let mut redis = RedisConfig::new(&url);
    redis.prefix = format!("t{}:", &UserUuid::random().simple()[..12]);
    let open = || async {
        let pool = RedisPool::new(redis.clone()).unwrap();
        pool.ping().await.unwrap_or_else(|e| {
            panic!("Redis is not reachable at {url} ({e}); start redis-server")
        });
        Arc::new(RedisStore::new(pool)) as Arc<dyn JobStore>
    };

    let (receiver, hook) = Receiver::start(2, StatusCode::BAD_GATEWAY).await;
    let mut slow = config(&allow_of(&hook));
    slow.retry.initial = Duration::from_millis(300);
    let first = open().await;
    let id = finished_job(first.as_ref(), &hook).await;
    let stop = start(first.clone(), slow.clone());
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.hits() < 1 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    stop.cancel();
    drop(first);
    let hits_before = receiver.hits();
    assert!(hits_before >= 1);

    let second = open().await;
    let stop = start(second.clone(), slow);
    let delivery = settled(second.as_ref(), id, Duration::from_secs(20)).await;
    stop.cancel();
    assert_eq!(delivery.state, DeliveryState::Delivered, "{delivery:?}");
    assert_eq!(delivery.attempts.len(), 3);
    let ids: Vec<String> = receiver
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|(h, _)| h["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
    assert!(ids.iter().all(|i| *i == delivery.webhook_id));
}
