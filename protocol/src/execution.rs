//! What running a cell produced, in the order the kernel emitted it.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How an execution ended. Every non-`Ok` outcome also says, through
/// [`ExecutionResult::state_preserved`], whether the session's variables survived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The code ran to completion.
    Ok,
    /// The code raised; the error is in [`ExecutionResult::error`]. State is kept.
    Error,
    /// The time limit hit and an interrupt stopped the code. State is kept.
    TimeoutInterrupted,
    /// The kernel had to be restarted (interrupt ignored, or the kernel died). State is lost.
    KernelRestarted,
    /// The whole sandbox container was replaced. State and `/tmp` are lost; `/sandbox` files are kept.
    SandboxRecycled,
    /// The kernel exceeded the memory limit and was killed. State is lost.
    OomKilled,
    /// The job was cancelled while running (an interrupt stopped it). State is kept.
    Cancelled,
}

impl Outcome {
    /// Whether the session's Python state normally survives this outcome.
    pub fn keeps_state(self) -> bool {
        matches!(
            self,
            Outcome::Ok | Outcome::Error | Outcome::TimeoutInterrupted | Outcome::Cancelled
        )
    }
}

/// Which standard stream a chunk of text came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamName {
    Stdout,
    Stderr,
}

/// The error a cell raised, with the traceback's ANSI colour codes removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecError {
    pub ename: String,
    pub evalue: String,
    pub traceback: Vec<String>,
}

/// One thing the kernel emitted, in order. `data` maps MIME types to values exactly as the
/// kernel sent them: base64 text for `image/png`, text for `text/*` and `image/svg+xml`,
/// JSON for `application/json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    Stream {
        name: StreamName,
        text: String,
    },
    DisplayData {
        data: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        metadata: Map<String, Value>,
    },
    ExecuteResult {
        execution_count: Option<u32>,
        data: Map<String, Value>,
        #[serde(default, skip_serializing_if = "Map::is_empty")]
        metadata: Map<String, Value>,
    },
    Error(ExecError),
}

/// A file under `/sandbox` that a run created or changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileChange {
    /// Absolute sandbox path, e.g. `/sandbox/out/chart.png`.
    pub path: String,
    pub size: u64,
    /// `file` for regular files, `symlink` for links (never followed), `special` for FIFOs
    /// and sockets. Directories are not listed: a new file already implies its directory.
    pub kind: String,
}

/// Everything one execution produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExecutionResult {
    pub outcome: Outcome,
    /// Whether variables, imports and functions defined before this run still exist.
    pub state_preserved: bool,
    /// All stdout text, concatenated (truncated at the output cap).
    pub stdout: String,
    /// All stderr text, concatenated (truncated at the output cap).
    pub stderr: String,
    /// Everything emitted, in emission order (streams included).
    pub outputs: Vec<Output>,
    pub error: Option<ExecError>,
    pub execution_count: Option<u32>,
    pub duration_ms: u64,
    /// True when output beyond the per-execution cap was dropped.
    pub truncated: bool,
    /// A human sentence for any outcome other than `ok`/`error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// True when this run started in a fresh sandbox because the previous one was lost.
    #[serde(default)]
    pub session_restarted: bool,
    /// Files under `/sandbox` this run created or changed.
    #[serde(default)]
    pub files: Vec<FileChange>,
}

impl ExecutionResult {
    /// What a notebook shows as text: stdout plus the `text/plain` of every result,
    /// in order. This is the seed API's `result_text`.
    pub fn text(&self) -> String {
        let mut text = String::new();
        for output in &self.outputs {
            match output {
                Output::Stream {
                    name: StreamName::Stdout,
                    text: t,
                } => text.push_str(t),
                Output::ExecuteResult { data, .. } => {
                    if let Some(Value::String(t)) = data.get("text/plain") {
                        text.push_str(t);
                    }
                }
                _ => {}
            }
        }
        text
    }

    /// The last `image/png` emitted, base64 as the kernel sent it (seed's `result_base64`).
    pub fn last_png(&self) -> Option<&str> {
        self.outputs.iter().rev().find_map(|o| match o {
            Output::DisplayData { data, .. } | Output::ExecuteResult { data, .. } => {
                data.get("image/png").and_then(Value::as_str)
            }
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outputs: Vec<Output>) -> ExecutionResult {
        ExecutionResult {
            outcome: Outcome::Ok,
            state_preserved: true,
            stdout: String::new(),
            stderr: String::new(),
            outputs,
            error: None,
            execution_count: Some(1),
            duration_ms: 1,
            truncated: false,
            message: None,
            session_restarted: false,
            files: vec![],
        }
    }

    #[test]
    fn text_is_stdout_plus_plain_results_in_order() {
        let mut data = Map::new();
        data.insert("text/plain".into(), Value::String("42".into()));
        let r = result(vec![
            Output::Stream {
                name: StreamName::Stdout,
                text: "a\n".into(),
            },
            Output::Stream {
                name: StreamName::Stderr,
                text: "warn\n".into(),
            },
            Output::ExecuteResult {
                execution_count: Some(1),
                data,
                metadata: Map::new(),
            },
        ]);
        assert_eq!(r.text(), "a\n42");
    }

    #[test]
    fn last_png_wins() {
        let png = |s: &str| {
            let mut d = Map::new();
            d.insert("image/png".into(), Value::String(s.into()));
            Output::DisplayData {
                data: d,
                metadata: Map::new(),
            }
        };
        let r = result(vec![png("first"), png("second")]);
        assert_eq!(r.last_png(), Some("second"));
    }
}
