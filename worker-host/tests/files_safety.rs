//! Acceptance 4 and 5: links, hard links and FIFOs planted by sandbox code never lead the
//! host to read, write or delete anything it should not, and nothing hangs; outbound URLs
//! to internal addresses are refused unless allow-listed.

mod common;

use common::files::{FileServer, egress, sha256};
use common::{T, TestEngine, config};
use std::time::Duration;
use tether_protocol::files::{DeleteItem, ExportItem, ImportItem};
use tether_protocol::{
    DeleteSpec, EntryKind, ErrorCode, ExportSpec, ImportSpec, Outcome, SandboxPath, UserUuid,
};
use tether_worker_host::{BodyChunk, Engine, EngineError};
use tokio::sync::mpsc;

/// Every operation must answer within this (a FIFO must never block the host).
const QUICK: Duration = Duration::from_secs(15);

fn path(p: &str) -> SandboxPath {
    SandboxPath::try_from(p).expect("valid sandbox path")
}

fn code_of<T: std::fmt::Debug>(what: &str, r: Result<T, EngineError>) -> ErrorCode {
    match r {
        Err(EngineError::Files(f)) => f.error.code(),
        other => panic!("{what}: expected a typed file error, got {other:?}"),
    }
}

async fn within<F: std::future::Future>(what: &str, f: F) -> F::Output {
    tokio::time::timeout(QUICK, f)
        .await
        .unwrap_or_else(|_| panic!("{what} hung"))
}

async fn write(engine: &Engine, u: UserUuid, p: &str, bytes: &[u8]) -> Result<u64, EngineError> {
    let (tx, rx) = mpsc::channel(4);
    let chunks = vec![BodyChunk::Data(bytes.to_vec().into()), BodyChunk::End];
    tokio::spawn(async move {
        for c in chunks {
            let _ = tx.send(c).await;
        }
    });
    engine
        .write_file(u, path(p), Some(bytes.len() as u64), rx)
        .await
        .map(|f| f.size)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_hard_links_and_fifos_are_refused_without_hanging() {
    let server = FileServer::start().await;
    let mut config = config("safety");
    config.files.egress = egress(&server.allow_entry());
    let t = TestEngine::start(config).await;
    let u = UserUuid::random();
    let passwd_before = sha256(&std::fs::read("/etc/passwd").unwrap());

    let plant = r#"
import os
os.symlink("/etc/passwd", "/sandbox/evil")
os.symlink("/etc", "/sandbox/etcdir")
os.makedirs("/sandbox/d", exist_ok=True)
with open("/sandbox/d/original.txt", "w") as f:
    f.write("mine")
os.link("/sandbox/d/original.txt", "/sandbox/d/hardlink.txt")
try:
    os.link("/etc/passwd", "/sandbox/outside-link")
    print("outside hard link made")
except OSError as e:
    print("outside hard link refused", e.errno)
os.mkfifo("/sandbox/fifo")
"#;
    let r = t.engine.execute(u, plant, T).await.unwrap().result;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    // /etc is on another file system than the session disk: EXDEV (18).
    assert!(
        r.stdout.contains("outside hard link refused 18"),
        "{}",
        r.stdout
    );

    let cases = [
        ("/sandbox/evil", ErrorCode::UnsafePath),
        ("/sandbox/etcdir/passwd", ErrorCode::UnsafePath),
        ("/sandbox/d/hardlink.txt", ErrorCode::UnsafePath),
        ("/sandbox/d/original.txt", ErrorCode::UnsafePath),
        ("/sandbox/fifo", ErrorCode::UnsafePath),
    ];
    for (p, expected) in cases {
        // Direct download.
        let read = within(p, t.engine.read_file(u, path(p))).await;
        assert_eq!(code_of(&format!("read {p}"), read), expected, "read {p}");

        // Export (to a server that records whatever reaches it).
        let (dir, name) = p.rsplit_once('/').unwrap();
        let spec = ExportSpec::try_from(vec![ExportItem {
            path: dir.into(),
            name: name.into(),
            upload_url: server.url(&format!("/files/{name}")),
            method: None,
            fields: None,
        }])
        .unwrap();
        let exported = within(p, t.engine.export_files(u, spec)).await;
        assert_eq!(
            code_of(&format!("export {p}"), exported),
            expected,
            "export {p}"
        );

        // Delete: refused, and the entry is still there.
        let spec = DeleteSpec::try_from(vec![DeleteItem {
            path: dir.into(),
            name: name.into(),
        }])
        .unwrap();
        let deleted = within(p, t.engine.delete_files(u, spec)).await;
        assert_eq!(
            code_of(&format!("delete {p}"), deleted),
            expected,
            "delete {p}"
        );
    }
    assert!(
        server.received.lock().unwrap().is_empty(),
        "bytes left the host"
    );

    // Listing describes links and FIFOs without following them.
    let listing = within("list", t.engine.list_dir(u, SandboxPath::root()))
        .await
        .unwrap();
    let kind = |n: &str| listing.entries.iter().find(|e| e.name == n).map(|e| e.kind);
    assert_eq!(kind("evil"), Some(EntryKind::Symlink));
    assert_eq!(kind("etcdir"), Some(EntryKind::Symlink));
    assert_eq!(kind("fifo"), Some(EntryKind::Special));
    assert_eq!(kind("d"), Some(EntryKind::Dir));
    let evil = listing.entries.iter().find(|e| e.name == "evil").unwrap();
    assert_eq!(
        evil.size,
        "/etc/passwd".len() as u64,
        "a link's size is its target's length, not the file's"
    );
    for p in ["/sandbox/evil", "/sandbox/etcdir", "/sandbox/fifo"] {
        let listed = within(p, t.engine.list_dir(u, path(p))).await;
        let code = code_of(&format!("list {p}"), listed);
        assert!(
            matches!(code, ErrorCode::UnsafePath | ErrorCode::InvalidRequest),
            "list {p}: {code:?}"
        );
    }

    // Writes through a link are refused; nothing appears on the host.
    let through = within(
        "write",
        write(&t.engine, u, "/sandbox/etcdir/tether-pwned", b"x"),
    )
    .await;
    assert_eq!(
        code_of("write through link", through),
        ErrorCode::UnsafePath
    );
    assert!(!std::path::Path::new("/etc/tether-pwned").exists());
    let spec = ImportSpec::try_from(vec![ImportItem {
        download_url: server.url("/files/x"),
        path: "/sandbox/etcdir".into(),
        name: "tether-pwned".into(),
    }])
    .unwrap();
    let imported = within("import", t.engine.import_files(u, spec)).await;
    assert_eq!(
        code_of("import through link", imported),
        ErrorCode::UnsafePath
    );

    // Writing to the link's own name replaces the link; its target is untouched.
    let size = within("overwrite", write(&t.engine, u, "/sandbox/evil", b"safe"))
        .await
        .unwrap();
    assert_eq!(size, 4);
    assert_eq!(
        sha256(&std::fs::read("/etc/passwd").unwrap()),
        passwd_before
    );
    let r = t
        .engine
        .execute(
            u,
            "import os; print(os.path.islink('/sandbox/evil'), open('/sandbox/evil').read())",
            T,
        )
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout, "False safe\n");
    // Files the host wrote belong to the sandbox user.
    let r = t
        .engine
        .execute(
            u,
            "import os; s = os.stat('/sandbox/evil'); print(s.st_uid, s.st_gid)",
            T,
        )
        .await
        .unwrap()
        .result;
    assert_eq!(r.stdout, "1000 1000\n");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_urls_are_refused_unless_allow_listed() {
    let server = FileServer::start().await;
    server.put("a.csv", b"x,y\n");
    let port = server.addr.port();
    let mut config = config("egress");
    config.files.egress = egress("");
    let t = TestEngine::start(config).await;
    let u = UserUuid::random();
    let urls = [
        format!("http://127.0.0.1:{port}/files/a.csv"),
        format!("http://localhost:{port}/files/a.csv"),
        format!("http://[::1]:{port}/files/a.csv"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://[::ffff:169.254.169.254]/latest/meta-data/".to_owned(),
        "http://internal.example/a.csv".to_owned(),
    ];
    for url in &urls {
        let spec = ImportSpec::try_from(vec![ImportItem {
            download_url: url.clone(),
            path: "/sandbox".into(),
            name: "a.csv".into(),
        }])
        .unwrap();
        let r = within(url, t.engine.import_files(u, spec)).await;
        assert_eq!(code_of(url, r), ErrorCode::EgressDenied, "{url}");
    }
    t.stop().await;

    // The same local server, allow-listed: admitted; a redirect from it to the metadata
    // address is re-checked and refused.
    let mut config = common::config("egress-allow");
    config.files.egress = egress(&server.allow_entry());
    let t = TestEngine::start(config).await;
    let spec = ImportSpec::try_from(vec![ImportItem {
        download_url: urls[0].clone(),
        path: "/sandbox".into(),
        name: "a.csv".into(),
    }])
    .unwrap();
    assert_eq!(t.engine.import_files(u, spec).await.unwrap()[0].size, 4);
    let hop = server.url("/redirect?to=http://169.254.169.254/latest/meta-data/");
    let spec = ImportSpec::try_from(vec![ImportItem {
        download_url: hop,
        path: "/sandbox".into(),
        name: "b.csv".into(),
    }])
    .unwrap();
    let r = within("redirect", t.engine.import_files(u, spec)).await;
    assert_eq!(code_of("redirect to metadata", r), ErrorCode::EgressDenied);
    t.stop().await;
}

#[test]
fn malformed_requests_are_refused_with_the_entry_named() {
    let item = |url: &str, p: &str, n: &str| ImportItem {
        download_url: url.into(),
        path: p.into(),
        name: n.into(),
    };
    let ok = item("https://example.com/a.csv", "/sandbox", "a.csv");
    for (bad, field) in [
        (
            item("https://example.com/a", "/sandbox/../etc", "a"),
            "path",
        ),
        (item("https://example.com/a", "/tmp", "a"), "path"),
        (item("https://example.com/a", "/sandbox", "../a"), "name"),
        (item("https://example.com/a", "/sandbox", ".."), "name"),
        (item("https://example.com/a", "/sandbox", "a\\b"), "name"),
        (item("file:///etc/passwd", "/sandbox", "a"), "download_url"),
    ] {
        let err = ImportSpec::try_from(vec![ok.clone(), bad]).unwrap_err();
        assert_eq!((err.index, err.field), (Some(1), field), "{err}");
    }
    let err = ImportSpec::try_from(vec![ok; 101]).unwrap_err();
    assert_eq!(err.index, None);
    assert!(err.to_string().contains("at most 100"), "{err}");
}
