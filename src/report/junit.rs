//! JUnit XML for CI: one `<testsuite>` per run (or per checked file), one
//! `<testcase>` per checker (and one named `run` when the run did not run
//! to its end or nothing succeeded). An invalid, unknown or incomplete
//! verdict is a `<failure>` (type `invalid` / `unknown` / `incomplete`)
//! whose message is the explanation sentence; a checker that could not run
//! is an `<error>`.

use super::{esc, VerdictRow};

/// One suite: a run or a file, and its checkers' verdicts.
#[derive(Clone, Debug)]
pub struct Suite {
    /// The run's or file's name.
    pub name: String,
    /// One per checker.
    pub cases: Vec<VerdictRow>,
    /// Seconds the checking took, when known.
    pub seconds: Option<f64>,
}

fn tally(cases: &[VerdictRow]) -> (usize, usize) {
    let failures = cases
        .iter()
        .filter(|c| matches!(c.validity.as_str(), "invalid" | "unknown" | "incomplete"))
        .count();
    let errors = cases.iter().filter(|c| c.validity == "error").count();
    (failures, errors)
}

/// The document.
pub fn render(suites: &[Suite]) -> String {
    let all: Vec<&VerdictRow> = suites.iter().flat_map(|s| &s.cases).collect();
    let failures = all
        .iter()
        .filter(|c| matches!(c.validity.as_str(), "invalid" | "unknown" | "incomplete"))
        .count();
    let errors = all.iter().filter(|c| c.validity == "error").count();
    let mut s = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"faultline\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\">\n",
        all.len()
    );
    for suite in suites {
        let (f, e) = tally(&suite.cases);
        s.push_str(&format!(
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{f}\" errors=\"{e}\" skipped=\"0\"{}>\n",
            esc(&suite.name),
            suite.cases.len(),
            suite
                .seconds
                .map(|t| format!(" time=\"{t:.3}\""))
                .unwrap_or_default()
        ));
        for c in &suite.cases {
            s.push_str(&format!(
                "    <testcase classname=\"{}\" name=\"{}\">",
                esc(&suite.name),
                esc(&c.name)
            ));
            match c.validity.as_str() {
                "valid" => {}
                "error" => s.push_str(&format!(
                    "\n      <error message=\"{}\" type=\"error\">{}</error>\n    ",
                    esc(&c.sentence),
                    esc(&c.sentence)
                )),
                other => s.push_str(&format!(
                    "\n      <failure message=\"{}\" type=\"{}\">{}: {}</failure>\n    ",
                    esc(&c.sentence),
                    esc(other),
                    esc(other),
                    esc(&c.sentence)
                )),
            }
            s.push_str("</testcase>\n");
        }
        s.push_str("  </testsuite>\n");
    }
    s.push_str("</testsuites>\n");
    s
}
