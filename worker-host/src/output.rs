//! Turning kernel messages into Tether outputs, within a byte budget.

use jupyter_protocol::messaging::{JupyterMessageContent, Stdio};
use serde_json::{Map, Value};
use tether_protocol::{ExecError, Output, StreamName};

/// Accumulates one execution's outputs in emission order, keeping at most `cap` bytes of
/// payload; anything beyond is dropped and [`Collected::truncated`] is set. Memory use is
/// therefore bounded whatever the code prints.
#[derive(Debug)]
pub struct OutputCollector {
    cap: usize,
    used: usize,
    outputs: Vec<Output>,
    stdout: String,
    stderr: String,
    error: Option<ExecError>,
    truncated: bool,
    /// The kernel reported `idle` for the request.
    pub idle: bool,
    /// The kernel's `execute_reply` arrived.
    pub replied: bool,
    /// From `execute_reply`.
    pub execution_count: Option<usize>,
}

/// Everything collected for one request.
#[derive(Debug, Default)]
pub struct Collected {
    pub outputs: Vec<Output>,
    pub stdout: String,
    pub stderr: String,
    pub error: Option<ExecError>,
    pub truncated: bool,
    pub execution_count: Option<u32>,
}

impl Collected {
    /// Append what a later phase (after an interrupt) collected.
    pub fn extend(&mut self, more: Collected) {
        self.outputs.extend(more.outputs);
        self.stdout.push_str(&more.stdout);
        self.stderr.push_str(&more.stderr);
        self.error = more.error.or(self.error.take());
        self.truncated |= more.truncated;
        self.execution_count = more.execution_count.or(self.execution_count);
    }

    /// Bytes of payload already held (so a resumed collector keeps the same budget).
    pub fn size(&self) -> usize {
        self.stdout.len() + self.stderr.len() + self.outputs.iter().map(output_size).sum::<usize>()
    }
}

impl OutputCollector {
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            used: 0,
            outputs: Vec::new(),
            stdout: String::new(),
            stderr: String::new(),
            error: None,
            truncated: false,
            idle: false,
            replied: false,
            execution_count: None,
        }
    }

    /// Converts an iopub message into an output and records it. Returns the output for
    /// streaming when it was kept.
    pub fn push(&mut self, content: JupyterMessageContent) -> Option<Output> {
        let output = match content {
            JupyterMessageContent::StreamContent(s) => {
                let name = match s.name {
                    Stdio::Stdout => StreamName::Stdout,
                    Stdio::Stderr => StreamName::Stderr,
                };
                Output::Stream { name, text: s.text }
            }
            JupyterMessageContent::DisplayData(d) => Output::DisplayData {
                data: media_map(&d.data),
                metadata: d.metadata,
            },
            JupyterMessageContent::ExecuteResult(r) => Output::ExecuteResult {
                execution_count: u32::try_from(r.execution_count.value()).ok(),
                data: media_map(&r.data),
                metadata: r.metadata,
            },
            JupyterMessageContent::ErrorOutput(e) => {
                let error = ExecError {
                    ename: e.ename,
                    evalue: e.evalue,
                    traceback: e.traceback.iter().map(|l| strip_ansi(l)).collect(),
                };
                self.error = Some(error.clone());
                Output::Error(error)
            }
            _ => return None,
        };
        self.keep(output)
    }

    fn keep(&mut self, output: Output) -> Option<Output> {
        let size = output_size(&output);
        if self.used + size > self.cap {
            // Keep a prefix of stream text so the client sees where output stopped.
            if let Output::Stream { name, text } = &output {
                let room = self.cap.saturating_sub(self.used);
                let cut = floor_char_boundary(text, room);
                if cut > 0 {
                    let partial = Output::Stream {
                        name: *name,
                        text: text[..cut].to_owned(),
                    };
                    self.truncated = true;
                    self.used = self.cap;
                    self.record(partial.clone());
                    return Some(partial);
                }
            }
            // Errors are always kept: they are small and say what went wrong.
            if !matches!(output, Output::Error(_)) {
                self.truncated = true;
                return None;
            }
        }
        self.used += size;
        self.record(output.clone());
        Some(output)
    }

    fn record(&mut self, output: Output) {
        if let Output::Stream { name, text } = &output {
            // Consecutive chunks of the same stream are merged, as a notebook shows them.
            match name {
                StreamName::Stdout => self.stdout.push_str(text),
                StreamName::Stderr => self.stderr.push_str(text),
            }
            if let Some(Output::Stream {
                name: last_name,
                text: last_text,
            }) = self.outputs.last_mut()
                && last_name == name
            {
                last_text.push_str(text);
                return;
            }
        }
        self.outputs.push(output);
    }

    /// Finish collecting.
    pub fn finish(self) -> Collected {
        Collected {
            outputs: self.outputs,
            stdout: self.stdout,
            stderr: self.stderr,
            error: self.error,
            truncated: self.truncated,
            execution_count: self.execution_count.and_then(|c| u32::try_from(c).ok()),
        }
    }

    /// A collector continuing an earlier one's budget.
    pub fn continuing(cap: usize, earlier: &Collected) -> Self {
        let mut c = Self::new(cap);
        c.used = earlier.size();
        c
    }
}

fn media_map(media: &jupyter_protocol::media::Media) -> Map<String, Value> {
    match serde_json::to_value(media) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

fn output_size(output: &Output) -> usize {
    match output {
        Output::Stream { text, .. } => text.len(),
        Output::DisplayData { data, .. } | Output::ExecuteResult { data, .. } => {
            data.values().map(value_size).sum()
        }
        Output::Error(e) => {
            e.ename.len() + e.evalue.len() + e.traceback.iter().map(String::len).sum::<usize>()
        }
    }
}

fn value_size(value: &Value) -> usize {
    match value {
        Value::String(s) => s.len(),
        other => other.to_string().len(),
    }
}

fn floor_char_boundary(text: &str, max: usize) -> usize {
    let mut cut = max.min(text.len());
    while cut > 0 && !text.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

/// Remove ANSI colour/escape sequences (IPython colours its tracebacks).
pub fn strip_ansi(text: &str) -> String {
    String::from_utf8_lossy(&strip_ansi_escapes::strip(text)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jupyter_protocol::messaging::StreamContent;

    fn stdout(text: &str) -> JupyterMessageContent {
        JupyterMessageContent::StreamContent(StreamContent {
            name: Stdio::Stdout,
            text: text.into(),
        })
    }

    #[test]
    fn merges_stream_chunks_and_caps_output() {
        let mut c = OutputCollector::new(10);
        c.push(stdout("hello "));
        c.push(stdout("world!"));
        c.push(stdout("more"));
        let done = c.finish();
        assert_eq!(done.stdout, "hello worl");
        assert!(done.truncated);
        assert_eq!(done.outputs.len(), 1);
    }

    #[test]
    fn strips_ansi_codes() {
        assert_eq!(
            strip_ansi("\u{1b}[0;31mZeroDivisionError\u{1b}[0m"),
            "ZeroDivisionError"
        );
    }
}
