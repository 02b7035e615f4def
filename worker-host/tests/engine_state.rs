//! Acceptance 1–3: state persists within a session and is isolated between sessions;
//! rich outputs (text, PNG, HTML) and errors come back in emission order.

mod common;

use common::{T, TestEngine, config};
use tether_protocol::{Outcome, Output, StreamName, UserUuid};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_persists_and_sessions_are_isolated() {
    let t = TestEngine::start(config("state")).await;
    let (a, b) = (UserUuid::random(), UserUuid::random());
    let (ra, rb) = tokio::join!(
        t.engine.execute(a, "x = 41", T),
        t.engine.execute(b, "y = 1", T)
    );
    assert_eq!(ra.unwrap().result.outcome, Outcome::Ok);
    assert_eq!(rb.unwrap().result.outcome, Outcome::Ok);

    let r = t
        .engine
        .execute(a, "x += 1; print(x)", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.outcome, Outcome::Ok);
    assert_eq!(r.stdout, "42\n");
    assert!(r.state_preserved);

    let r = t.engine.execute(b, "print(x)", T).await.unwrap().result;
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(r.error.as_ref().unwrap().ename, "NameError");
    t.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plot_text_dataframe_and_errors() {
    let t = TestEngine::start(config("outputs")).await;
    let u = UserUuid::random();
    let plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nplt.title('增长 growth')\nplt.show()\nprint('done')";
    let r = t.engine.execute(u, plot, T).await.unwrap().result;
    assert_eq!(r.outcome, Outcome::Ok, "{r:?}");
    assert_eq!(r.stdout, "done\n");
    let png = r.last_png().expect("a PNG was displayed");
    assert!(png.len() > 1000);
    assert!(
        !r.stderr.contains("missing from font"),
        "CJK glyphs missing: {}",
        r.stderr
    );

    let df = "import pandas as pd\npd.DataFrame({'a': [1, 2], 'b': [3, 4]})";
    let r = t.engine.execute(u, df, T).await.unwrap().result;
    let data = r
        .outputs
        .iter()
        .find_map(|o| match o {
            Output::ExecuteResult { data, .. } => Some(data.clone()),
            _ => None,
        })
        .expect("an execute_result");
    assert!(
        data.contains_key("text/plain") && data.contains_key("text/html"),
        "{data:?}"
    );
    assert_eq!(r.execution_count, Some(2));

    let r = t
        .engine
        .execute(u, "print('before')\n1/0", T)
        .await
        .unwrap()
        .result;
    assert_eq!(r.outcome, Outcome::Error);
    assert_eq!(r.stdout, "before\n");
    let err = r.error.as_ref().unwrap();
    assert_eq!(err.ename, "ZeroDivisionError");
    assert!(
        err.traceback.iter().all(|l| !l.contains('\u{1b}')),
        "ANSI codes left: {:?}",
        err.traceback
    );
    assert!(matches!(
        r.outputs.first(),
        Some(Output::Stream {
            name: StreamName::Stdout,
            ..
        })
    ));
    assert!(matches!(r.outputs.last(), Some(Output::Error(_))));
    t.stop().await;
}
