//! Running cargo with its output echoed as it comes, counting the `test result:` lines and
//! keeping the first error for a target's record.

use super::record::{Record, Tests};
use anyhow::bail;
use std::io::{BufRead, BufReader};
use std::process::Stdio;

pub(crate) struct Outcome {
    pub(crate) ok: bool,
    pub(crate) tests: Tests,
    pub(crate) first_error: Option<String>,
}

/// Runs a command, echoing its output as it comes, counting `test result:` lines and
/// keeping the first `error` line for the record.
pub(crate) fn stream(c: xshell::Cmd<'_>) -> Outcome {
    let mut command = std::process::Command::from(c);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Outcome {
                ok: false,
                tests: Tests::default(),
                first_error: Some(format!("cannot start: {e}")),
            }
        }
    };
    let stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut first: Option<String> = None;
        // rustc's note under a linker error: what the linker itself said.
        let mut note: Option<String> = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let l = line.trim();
            if first.is_none()
                && (l.starts_with("error") || l.contains("error:"))
                && !l.starts_with("error: could not compile")
            {
                first = Some(l.to_string());
            } else if first.is_some() && note.is_none() {
                if let Some(n) = l.strip_prefix("= note:").map(str::trim) {
                    if !n.is_empty() && !n.starts_with('"') && !n.starts_with("some arguments") {
                        note = Some(n.to_string());
                    }
                }
            }
        }
        match (first, note) {
            (Some(f), Some(n)) => Some(format!("{f}: {n}")),
            (first, _) => first,
        }
    });
    let mut tests = Tests::default();
    let stdout = child.stdout.take().expect("piped");
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        println!("{line}");
        if let Some(rest) = line.trim().strip_prefix("test result: ") {
            tests.binaries += 1;
            for part in rest.split(';') {
                let mut words = part.split_whitespace().rev();
                let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                    continue;
                };
                let n: u32 = n.parse().unwrap_or(0);
                match kind {
                    "passed" => tests.passed += n,
                    "failed" => tests.failed += n,
                    "ignored" => tests.ignored += n,
                    _ => {}
                }
            }
        }
    }
    let ok = child.wait().map(|s| s.success()).unwrap_or(false);
    let first_error = errors.join().ok().flatten();
    Outcome {
        ok,
        tests,
        first_error,
    }
}

/// Runs a `cargo test` command and adds its counts to `rec`; an error only when it failed
/// without a failing test to show for it (a build error, a crash of the runner).
pub(crate) fn run_tests(c: xshell::Cmd<'_>, rec: &mut Record) -> anyhow::Result<()> {
    let shown = c.to_string();
    println!("$ {shown}");
    let out = stream(c);
    rec.tests.binaries += out.tests.binaries;
    rec.tests.passed += out.tests.passed;
    rec.tests.failed += out.tests.failed;
    rec.tests.ignored += out.tests.ignored;
    if out.ok || out.tests.failed > 0 {
        return Ok(());
    }
    bail!(
        "{shown}: {}",
        out.first_error
            .unwrap_or_else(|| "exited non-zero".to_string())
    )
}
