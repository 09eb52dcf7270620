//! Bounded reading of text lines and HTTP heads, shared by the built-in
//! services and the story's checks. Every read has a size limit; callers
//! add the time limit.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// Read one line (without its `\n` or `\r\n`). `Ok(None)` at end of
/// stream before any byte; an error if the line exceeds `max` bytes.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let buf = r.fill_buf().await?;
        if buf.is_empty() {
            if line.is_empty() {
                return Ok(None);
            }
            break;
        }
        let (take, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        line.extend_from_slice(&buf[..take]);
        r.consume(take);
        if line.len() > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
        }
        if done {
            break;
        }
    }
    while matches!(line.last(), Some(b'\n' | b'\r')) {
        line.pop();
    }
    Ok(Some(String::from_utf8_lossy(&line).into_owned()))
}

/// Read an HTTP request or response head: the lines up to the empty one.
/// Returns the lines (first is the request or status line); an error if
/// the stream ends first or the head exceeds `max` bytes.
pub(crate) async fn read_head<R: AsyncBufRead + Unpin>(
    r: &mut R,
    max: usize,
) -> io::Result<Vec<String>> {
    let mut lines = Vec::new();
    let mut total = 0;
    loop {
        let line = read_line(r, max)
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "the head ended early"))?;
        total += line.len() + 2;
        if total > max {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        if line.is_empty() {
            if lines.is_empty() {
                continue; // tolerate a stray CRLF before the request line
            }
            return Ok(lines);
        }
        lines.push(line);
    }
}

/// The `<title>` of an HTML page, if it has one.
pub(crate) fn html_title(body: &str) -> Option<&str> {
    let start = body.find("<title>")? + "<title>".len();
    let end = body[start..].find("</title>")? + start;
    Some(body[start..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    #[tokio::test]
    async fn lines_are_split_and_bounded() {
        let mut r = BufReader::new(&b"HELLO library\r\nBOOK 1\nlast"[..]);
        assert_eq!(
            read_line(&mut r, 64).await.unwrap().as_deref(),
            Some("HELLO library")
        );
        assert_eq!(
            read_line(&mut r, 64).await.unwrap().as_deref(),
            Some("BOOK 1")
        );
        assert_eq!(
            read_line(&mut r, 64).await.unwrap().as_deref(),
            Some("last")
        );
        assert_eq!(read_line(&mut r, 64).await.unwrap(), None);
        let mut long = BufReader::new(&[b'a'; 100][..]);
        assert!(read_line(&mut long, 10).await.is_err());
    }

    #[tokio::test]
    async fn heads_end_at_the_empty_line() {
        let mut r = BufReader::new(&b"CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\nrest"[..]);
        let head = read_head(&mut r, 1024).await.unwrap();
        assert_eq!(head, ["CONNECT a:443 HTTP/1.1", "Host: a"]);
        let mut cut = BufReader::new(&b"GET / HTTP/1.1\r\n"[..]);
        assert!(read_head(&mut cut, 1024).await.is_err());
    }

    #[test]
    fn titles() {
        assert_eq!(html_title("<html><title> Hi </title>"), Some("Hi"));
        assert_eq!(html_title("<html>"), None);
    }
}
