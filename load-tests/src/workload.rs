//! The three stateful scripts of the reference workload. Each step builds on the state
//! the previous steps left in the session, so a correct answer proves the session kept
//! its state (and that its requests ran in order).

use serde::Serialize;
use tether_protocol::Output;

/// One user's script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Workload {
    /// `acc += k`: the running sum 0 + 1 + … + k.
    IntegerAccumulation,
    /// `items.append(k)`, then `sum(items)`.
    ListAppendSum,
    /// numpy: `arr = arr + arange(4) * k`, then the array's sum.
    NumpyArrayOps,
}

/// What to run at one step and the answer it must give.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub code: String,
    pub expected: String,
}

impl Workload {
    pub const ALL: [Workload; 3] = [
        Workload::IntegerAccumulation,
        Workload::ListAppendSum,
        Workload::NumpyArrayOps,
    ];

    /// User `i`'s script (round robin, so every script runs when there are ≥ 3 users).
    pub fn for_user(i: usize) -> Self {
        Self::ALL[i % Self::ALL.len()]
    }

    /// Step `k` (0 sets the state up). The value is the cell's last expression, so the
    /// answer comes back as the execute result.
    pub fn step(self, k: u64) -> Step {
        let triangle = k * (k + 1) / 2;
        let (code, expected) = match (self, k) {
            (Workload::IntegerAccumulation, 0) => ("acc = 0\nacc".to_owned(), 0),
            (Workload::IntegerAccumulation, k) => (format!("acc += {k}\nacc"), triangle),
            (Workload::ListAppendSum, 0) => ("items = []\nsum(items)".to_owned(), 0),
            (Workload::ListAppendSum, k) => (format!("items.append({k})\nsum(items)"), triangle),
            (Workload::NumpyArrayOps, 0) => (
                "import numpy as np\narr = np.zeros(4, dtype=np.int64)\nint(arr.sum())".to_owned(),
                0,
            ),
            // Σ_j j·(1+…+k) over j = 0..3 = 6·triangle.
            (Workload::NumpyArrayOps, k) => (
                format!(
                    "arr = arr + np.arange(4, dtype=np.int64) * {k}\nint(arr @ np.ones(4, dtype=np.int64))"
                ),
                6 * triangle,
            ),
        };
        Step {
            code,
            expected: expected.to_string(),
        }
    }
}

/// What a request answered, whichever path it took (HTTP, job record, raw kernel).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Answer {
    /// `text/plain` of the execute result, if the cell produced one.
    pub result_text: Option<String>,
    pub stdout: String,
    /// The cell ran to completion without raising (outcome `ok`).
    pub succeeded: bool,
    /// Why it did not succeed (exception name and message, or the outcome).
    pub problem: Option<String>,
}

impl Answer {
    /// Whether this answer is `expected` (the execute result, or printed output).
    pub fn is(&self, expected: &str) -> bool {
        self.succeeded
            && (self.result_text.as_deref().map(str::trim) == Some(expected)
                || self.stdout.trim() == expected)
    }

    /// The answer carried by a list of kernel outputs.
    pub fn from_outputs(outputs: &[Output], stdout: String, error: Option<String>) -> Self {
        let result_text = outputs.iter().rev().find_map(|o| match o {
            Output::ExecuteResult { data, .. } => data
                .get("text/plain")
                .and_then(|v| v.as_str())
                .map(str::to_owned),
            _ => None,
        });
        Self {
            result_text,
            stdout,
            succeeded: error.is_none(),
            problem: error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_answers_follow_the_state() {
        let w = Workload::IntegerAccumulation;
        assert_eq!(w.step(0).expected, "0");
        assert_eq!(w.step(4).expected, "10");
        assert_eq!(Workload::ListAppendSum.step(3).expected, "6");
        // arr after k=1,2: [0,3,6,9] → 18 = 6·3
        assert_eq!(Workload::NumpyArrayOps.step(2).expected, "18");
        assert_eq!(Workload::for_user(4), Workload::ListAppendSum);
    }

    #[test]
    fn answers_match_on_result_or_stdout_only_when_successful() {
        let mut a = Answer {
            result_text: Some("10".into()),
            succeeded: true,
            ..Answer::default()
        };
        assert!(a.is("10"));
        assert!(!a.is("11"));
        a.succeeded = false;
        assert!(!a.is("10"));
        let printed = Answer {
            stdout: "6\n".into(),
            succeeded: true,
            ..Answer::default()
        };
        assert!(printed.is("6"));
    }
}
