//! `cputree`: CPU time used by a process and all its descendants over an
//! interval, including descendants that come and go (sslh-fork and socat
//! fork a process per connection). Several PIDs may be given (a tunnel's
//! client and server): their trees are summed, a process in two of them
//! counted once.
//!
//! Every `--interval` it walks `/proc`, finds the tree under PID (by parent
//! pid) and remembers each member's latest utime+stime (all threads
//! included), keyed by pid and start time so a reused pid is a new process.
//! At the end (SIGTERM, SIGINT, or EOF on stdin with `--stdin`) it prints the
//! sum of (latest − first seen) over every process it saw; a process born
//! after the first walk counts from zero. What a short-lived process spends
//! after the last walk before it exits is missed: at most one interval of
//! it. Reaped children's time (`cutime`) is not used, since it would count
//! twice what was already sampled.

use std::collections::HashMap;
use std::fs;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::AsyncReadExt;
use tokio::signal::unix::{signal, SignalKind};

use crate::json::Obj;

/// Clock ticks per second of `/proc/*/stat` times: `USER_HZ`, 100 on every
/// Linux ABI this runs on.
const TICKS_PER_SEC: f64 = 100.0;

/// Arguments of `cputree`.
#[derive(Debug, clap::Args)]
pub(crate) struct CputreeArgs {
    /// Root(s) of the process tree(s) to account; with several, the sum.
    #[arg(required = true, num_args = 1..)]
    pids: Vec<u32>,
    /// Time between two walks of /proc.
    #[arg(long, default_value = "100ms", value_parser = crate::parse_duration)]
    interval: Duration,
    /// Also stop at EOF on stdin.
    #[arg(long)]
    stdin: bool,
    /// A label copied into the JSON output.
    #[arg(long, default_value = "")]
    label: String,
}

/// One process's identity and CPU ticks, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Stat {
    ppid: u32,
    /// Start time in ticks since boot: tells a reused pid apart.
    start: u64,
    /// utime + stime, in ticks.
    ticks: u64,
}

/// Parses the fields of `/proc/PID/stat` this tool needs.
fn parse_stat(s: &str) -> Option<Stat> {
    // The command name (field 2) is in parentheses and may hold anything,
    // spaces and ')' included: the fields resume after the last ')'.
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    // f[0] is field 3 (state), so field N is f[N - 3].
    let num = |n: usize| f.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        ppid: u32::try_from(num(4)?).ok()?,
        start: num(22)?,
        ticks: num(14)? + num(15)?,
    })
}

/// Accumulated per-process ticks of one tree.
#[derive(Debug)]
struct Tree {
    roots: Vec<u32>,
    /// (pid, start) → (ticks at first sight, latest ticks).
    seen: HashMap<(u32, u64), (u64, u64)>,
    walks: u64,
}

impl Tree {
    fn new(roots: Vec<u32>) -> Self {
        Self {
            roots,
            seen: HashMap::new(),
            walks: 0,
        }
    }

    /// Records one snapshot of all processes.
    fn record(&mut self, all: &HashMap<u32, Stat>) {
        let first = self.walks == 0;
        self.walks += 1;
        let mut stack = self.roots.clone();
        let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
        for (&pid, st) in all {
            children.entry(st.ppid).or_default().push(pid);
        }
        while let Some(pid) = stack.pop() {
            if let Some(st) = all.get(&pid) {
                let base = if first { st.ticks } else { 0 };
                let e = self.seen.entry((pid, st.start)).or_insert((base, st.ticks));
                e.1 = e.1.max(st.ticks);
            }
            if let Some(c) = children.get(&pid) {
                stack.extend(c);
            }
        }
    }

    /// Ticks used by the tree since the first snapshot.
    fn ticks(&self) -> u64 {
        self.seen.values().map(|(b, l)| l - b).sum()
    }
}

/// Reads `/proc/*/stat` of every process.
fn snapshot() -> HashMap<u32, Stat> {
    let mut all = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return all;
    };
    for ent in dir.flatten() {
        let Some(pid) = ent.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(s) = fs::read_to_string(format!("/proc/{pid}/stat")) {
            if let Some(st) = parse_stat(&s) {
                all.insert(pid, st);
            }
        }
    }
    all
}

/// Runs `cputree` until told to stop, then prints its JSON.
pub(crate) fn run(args: CputreeArgs) -> Result<()> {
    for pid in &args.pids {
        fs::metadata(format!("/proc/{pid}")).with_context(|| format!("no process {pid}"))?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let mut tree = Tree::new(args.pids.clone());
        tree.record(&snapshot());
        let mut tick = tokio::time::interval(args.interval);
        let stdin_eof = async {
            if !args.stdin {
                return std::future::pending().await;
            }
            let mut sink = [0u8; 64];
            let mut input = tokio::io::stdin();
            while input.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        };
        tokio::pin!(stdin_eof);
        loop {
            tokio::select! {
                _ = tick.tick() => tree.record(&snapshot()),
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = &mut stdin_eof => break,
            }
        }
        tree.record(&snapshot());
        let ticks = tree.ticks();
        println!(
            "{}",
            Obj::new()
                .str("label", &args.label)
                .int("pid", u64::from(args.pids[0]))
                .raw(
                    "pids",
                    &format!(
                        "[{}]",
                        args.pids
                            .iter()
                            .map(u32::to_string)
                            .collect::<Vec<_>>()
                            .join(",")
                    ),
                )
                .int("ticks", ticks)
                .num("cpu_ms", ticks as f64 * 1000.0 / TICKS_PER_SEC)
                .int("processes", tree.seen.len() as u64)
                .int("walks", tree.walks)
                .finish()
        );
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line() {
        let line = "1234 (a) b (c)) S 77 1234 1234 0 -1 4194560 100 0 0 0 \
                    25 17 0 0 20 0 1 0 5555 1000 100 0 0";
        let st = parse_stat(line).unwrap();
        assert_eq!(
            st,
            Stat {
                ppid: 77,
                start: 5555,
                ticks: 42
            }
        );
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn tree_counts_children_that_come_and_go() {
        let st = |ppid, start, ticks| Stat { ppid, start, ticks };
        let mut t = Tree::new(vec![10]);
        // First walk: the root and an unrelated process.
        t.record(&HashMap::from([(10, st(1, 1, 100)), (20, st(1, 2, 999))]));
        // A child appears and works; the root works too.
        t.record(&HashMap::from([(10, st(1, 1, 110)), (11, st(10, 3, 5))]));
        // The child is gone; a grandchild of a new child shows up.
        t.record(&HashMap::from([
            (10, st(1, 1, 120)),
            (12, st(10, 4, 1)),
            (13, st(12, 5, 7)),
        ]));
        // Pid 11 reused by a new child: a different process.
        t.record(&HashMap::from([(10, st(1, 1, 120)), (11, st(10, 6, 3))]));
        assert_eq!(t.ticks(), 20 + 5 + 1 + 7 + 3);
    }

    #[test]
    fn several_roots_are_summed_and_shared_members_counted_once() {
        let st = |ppid, start, ticks| Stat { ppid, start, ticks };
        // 10 and 20 are roots; 11 is a child of 10; 20 is not under 10.
        // Giving 11 as a root too must not count it twice.
        let mut t = Tree::new(vec![10, 20, 11]);
        t.record(&HashMap::from([
            (10, st(1, 1, 100)),
            (11, st(10, 2, 50)),
            (20, st(1, 3, 10)),
        ]));
        t.record(&HashMap::from([
            (10, st(1, 1, 104)),
            (11, st(10, 2, 53)),
            (20, st(1, 3, 17)),
        ]));
        assert_eq!(t.ticks(), 4 + 3 + 7);
    }
}
