//! Two tiny HTTP/1.1 responders: the website on the internet (door 80, and
//! behind door 443 through `onedoor serve`), and the router's captive portal
//! (`intercept`). Each reads one request head and answers one page, then
//! closes.

use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::wire::read_head;

/// The website's page title: seeing it proves the real website answered.
pub const WEBSITE_TITLE: &str = "The website on the internet";
/// The portal's page title.
pub const PORTAL_TITLE: &str = "Hotel Wi-Fi: please log in";

const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD: usize = 8 * 1024;

/// Which page to serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Page {
    /// The real website.
    Website,
    /// The captive portal.
    Portal,
}

fn response(page: Page) -> String {
    let (status, title, body) = match page {
        Page::Website => (
            "200 OK",
            WEBSITE_TITLE,
            "<h1>The website on the internet</h1>\
             <p>You reached the real website. Whichever door you came through, \
             this is the server's own page.</p>",
        ),
        Page::Portal => (
            "511 Network Authentication Required",
            PORTAL_TITLE,
            "<h1>Welcome to the hotel</h1>\
             <p>This page comes from the router, not from the website you asked for: \
             door 80 is intercepted. Please accept the terms to continue.</p>",
        ),
    };
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body>{body}</body></html>\n"
    );
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n\
         Content-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n{html}",
        html.len()
    )
}

/// Answer one HTTP request on `stream` with `page`.
pub(crate) async fn session(stream: TcpStream, page: Page) {
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut r, MAX_HEAD)).await {
        Ok(Ok(_head)) => {
            let _ = w.write_all(response(page).as_bytes()).await;
            let _ = w.shutdown().await;
        }
        _ => {
            let _ = w
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::html_title;

    #[test]
    fn pages_carry_their_titles_and_lengths() {
        for (page, title) in [(Page::Website, WEBSITE_TITLE), (Page::Portal, PORTAL_TITLE)] {
            let r = response(page);
            let (head, body) = r.split_once("\r\n\r\n").unwrap();
            assert!(head.contains(&format!("Content-Length: {}", body.len())));
            assert_eq!(html_title(body), Some(title));
        }
        assert!(response(Page::Portal).starts_with("HTTP/1.1 511 "));
    }
}
