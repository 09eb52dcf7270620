//! The narrator: the story in plain words, one line per event, to stderr
//! (or any writer). Write errors are ignored: a closed terminal must not
//! stop the cleanup.

use std::io::Write;

use crate::outcome::Step;

/// Writes the story as it happens.
pub struct Narrator {
    out: Box<dyn Write + Send>,
    open_line: bool,
}

impl std::fmt::Debug for Narrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Narrator").finish_non_exhaustive()
    }
}

impl Narrator {
    /// A narrator writing to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> Narrator {
        Narrator {
            out,
            open_line: false,
        }
    }

    /// A narrator writing to stderr.
    pub fn stderr() -> Narrator {
        Narrator::new(Box::new(std::io::stderr()))
    }

    /// A narrator that says nothing.
    pub fn silent() -> Narrator {
        Narrator::new(Box::new(std::io::sink()))
    }

    fn close_line(&mut self) {
        if self.open_line {
            let _ = writeln!(self.out);
            self.open_line = false;
        }
    }

    /// A line of its own.
    pub fn say(&mut self, text: impl AsRef<str>) {
        self.close_line();
        let _ = writeln!(self.out, "{}", text.as_ref());
        let _ = self.out.flush();
    }

    /// Start something that takes a while: the result follows on the same
    /// line ([`Narrator::end`]).
    pub fn begin(&mut self, text: impl AsRef<str>) {
        self.close_line();
        let _ = write!(self.out, "  {} … ", text.as_ref());
        let _ = self.out.flush();
        self.open_line = true;
    }

    /// Finish what [`Narrator::begin`] started.
    pub fn end(&mut self, text: impl AsRef<str>) {
        if self.open_line {
            let _ = writeln!(self.out, "{}", text.as_ref());
            self.open_line = false;
        } else {
            let _ = writeln!(self.out, "    {}", text.as_ref());
        }
        let _ = self.out.flush();
    }

    /// An indented detail line.
    pub fn detail(&mut self, text: impl AsRef<str>) {
        self.close_line();
        let _ = writeln!(self.out, "      {}", text.as_ref());
        let _ = self.out.flush();
    }

    /// A section heading inside a run.
    pub fn section(&mut self, text: impl AsRef<str>) {
        self.close_line();
        let _ = writeln!(self.out, "  {}", text.as_ref());
        let _ = self.out.flush();
    }

    /// A checked step, with a mark saying whether it went as expected.
    pub fn step(&mut self, step: &Step) {
        self.close_line();
        let _ = writeln!(self.out, "{}", step_line(step));
        let _ = self.out.flush();
    }
}

/// How a step is told.
pub fn step_line(step: &Step) -> String {
    if step.ok {
        format!("    ✓ {}: {}", step.title, step.observed)
    } else {
        format!(
            "    ✗ {}: {} (expected: {})",
            step.title,
            step.observed,
            step.expected.words()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Attempt, Observed, Path};
    use crate::policy::{Door, Expect};

    #[test]
    fn steps_are_told_with_a_mark() {
        let attempt = Attempt {
            id: "library-door-22".into(),
            title: "the library on door 22".into(),
            service: "library".into(),
            door: Some(Door::Tcp(22)),
            path: Path::Direct,
            expected: Expect::Dropped,
        };
        let ok = attempt
            .clone()
            .observed(Observed::Dropped { waited_ms: 1500 }, 1500);
        assert_eq!(
            step_line(&ok),
            "    ✓ the library on door 22: blocked: dropped without a word (no answer in 1.5 s)"
        );
        let bad = attempt.observed(
            Observed::Reached {
                answer: "WELCOME".into(),
            },
            3,
        );
        assert_eq!(
            step_line(&bad),
            "    ✗ the library on door 22: reached: WELCOME (expected: blocked (dropped))"
        );
    }
}
