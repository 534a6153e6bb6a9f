//! Reading HTTP answers without trusting their size: a server that streams gigabytes
//! (broken, or hostile behind a misconfigured endpoint) must not exhaust memory.

/// The most of a response body any client reads: every answer Reflex expects (ARM
/// documents, Slack replies, Table entities, JWKS) is far smaller.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The body as text, read chunk by chunk and cut off after `cap` bytes (what is cut
/// is dropped unread; JSON cut short then fails to parse, which callers handle).
pub async fn text_capped(mut resp: reqwest::Response, cap: usize) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        let room = cap.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if chunk.len() >= room {
            break;
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A server that answers with `size` bytes of `x`, chunked, then closes.
    async fn server(size: usize) -> String {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
                .await;
            let chunk = vec![b'x'; 64 * 1024];
            let mut sent = 0;
            while sent < size {
                let n = chunk.len().min(size - sent);
                let head = format!("{n:x}\r\n");
                if s.write_all(head.as_bytes()).await.is_err()
                    || s.write_all(&chunk[..n]).await.is_err()
                    || s.write_all(b"\r\n").await.is_err()
                {
                    return;
                }
                sent += n;
            }
            let _ = s.write_all(b"0\r\n\r\n").await;
        });
        format!("http://{addr}/")
    }

    #[tokio::test]
    async fn a_huge_body_is_cut_off_at_the_cap() {
        let url = server(64 * 1024 * 1024).await;
        let resp = reqwest::get(&url).await.unwrap();
        let text = text_capped(resp, 1024 * 1024).await;
        assert_eq!(text.len(), 1024 * 1024);
    }

    #[tokio::test]
    async fn a_small_body_is_read_whole() {
        let url = server(1000).await;
        let resp = reqwest::get(&url).await.unwrap();
        assert_eq!(text_capped(resp, MAX_BODY).await.len(), 1000);
    }
}
