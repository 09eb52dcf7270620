//! The library: a line-based TCP service (door 22 in the story).
//!
//! The client speaks first, so `onedoor serve` can route it by its first
//! line (any route that matches `HELLO library`, or `anyprot`):
//!
//! ```text
//! C: HELLO library
//! S: WELCOME to the library on the internet. Ask for BOOK 1-3, or say BYE.
//! C: BOOK 3
//! S: BOOK 3: The Tunnel. "As long as there is at least one door, everything can be done."
//! C: BYE
//! S: BYE
//! ```

use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::wire::read_line;

/// The first line a library client sends.
pub const HELLO: &str = "HELLO library";
/// How the library's greeting starts.
pub const WELCOME: &str = "WELCOME to the library";
/// The library's books.
pub const BOOKS: [&str; 3] = [
    "The Door Ajar. \"Every house has at least one door.\"",
    "Harbour Rules. \"Ships may leave from any quay the harbour master leaves open.\"",
    "The Tunnel. \"As long as there is at least one door, everything can be done.\"",
];

/// A reader may stay this long between lines.
const IDLE: Duration = Duration::from_secs(10);
const MAX_LINE: usize = 512;
/// Commands per connection.
const MAX_COMMANDS: usize = 32;

/// Serve one library reader.
pub(crate) async fn session(stream: TcpStream) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    let mut greeted = false;
    for _ in 0..MAX_COMMANDS {
        let line = match tokio::time::timeout(IDLE, read_line(&mut r, MAX_LINE)).await {
            Ok(Ok(Some(line))) => line,
            _ => return,
        };
        let reply = answer(&line, &mut greeted);
        if w.write_all(reply.as_bytes()).await.is_err() || reply == "BYE\n" {
            return;
        }
        if !greeted {
            return;
        }
    }
}

/// The library's answer to one line (with its newline).
pub(crate) fn answer(line: &str, greeted: &mut bool) -> String {
    let line = line.trim();
    if !*greeted {
        if line == HELLO {
            *greeted = true;
            return format!("{WELCOME} on the internet. Ask for BOOK 1-3, or say BYE.\n");
        }
        return format!("ERR start with: {HELLO}\n");
    }
    if line.eq_ignore_ascii_case("BYE") {
        return "BYE\n".into();
    }
    if let Some(n) = line.strip_prefix("BOOK ") {
        return match n.trim().parse::<usize>() {
            Ok(i @ 1..=3) => format!("BOOK {i}: {}\n", BOOKS[i - 1]),
            _ => "ERR the library has BOOK 1, 2 and 3\n".into(),
        };
    }
    "ERR ask for BOOK 1-3, or say BYE\n".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_visit_to_the_library() {
        let mut greeted = false;
        assert!(answer("BOOK 1", &mut greeted).starts_with("ERR"));
        assert!(answer(HELLO, &mut greeted).starts_with(WELCOME));
        assert!(answer("BOOK 3", &mut greeted).starts_with("BOOK 3: The Tunnel."));
        assert!(answer("BOOK 9", &mut greeted).starts_with("ERR"));
        assert_eq!(answer("BYE", &mut greeted), "BYE\n");
    }
}
