//! The one seam where errors raised below our services get the `ErrorDetail` every
//! lockmgr error carries: a tower layer on the client-facing tonic server. It rewrites
//! any non-OK `grpc-status` without `grpc-status-details-bin`, whether tonic put it in
//! the response headers (a unary request it could not decode: trailers-only) or in the
//! trailers (a stream), and it answers a client's expired deadline itself, so that
//! tonic's own `grpc-timeout` handling (`CANCELLED "Timeout expired"`, outside any layer
//! we can add) never fires first.
//!
//! Mapped: tonic's decode errors (`INTERNAL`) become `INVALID_ARGUMENT` /
//! `MALFORMED_REQUEST`; a message over `grpc_message_bytes_max` (`OUT_OF_RANGE`) becomes
//! `RESOURCE_EXHAUSTED` / `MESSAGE_TOO_LARGE` with the limit; anything else keeps its
//! code and gets a reason for it.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use http::{HeaderMap, Request, Response};
use http_body::Frame;
use lockmgr_proto::{
    status_with_detail,
    v1::{ErrorDetail, ErrorReason},
};
use tonic::{Code, Status, body::Body};

const GRPC_TIMEOUT: &str = "grpc-timeout";
const GRPC_STATUS: &str = "grpc-status";
const GRPC_MESSAGE: &str = "grpc-message";
const GRPC_DETAILS: &str = "grpc-status-details-bin";

/// Gives every error status an `ErrorDetail` (see the module's comment).
#[derive(Clone, Copy, Debug)]
pub struct ErrorDetailLayer {
    message_bytes_max: usize,
}

impl ErrorDetailLayer {
    pub fn new(message_bytes_max: usize) -> ErrorDetailLayer {
        ErrorDetailLayer { message_bytes_max }
    }
}

impl<S> tower_layer::Layer<S> for ErrorDetailLayer {
    type Service = ErrorDetailService<S>;

    fn layer(&self, inner: S) -> ErrorDetailService<S> {
        ErrorDetailService { inner, message_bytes_max: self.message_bytes_max }
    }
}

#[derive(Clone, Debug)]
pub struct ErrorDetailService<S> {
    inner: S,
    message_bytes_max: usize,
}

type ResponseFuture<E> = Pin<Box<dyn Future<Output = Result<Response<Body>, E>> + Send>>;

impl<S> tower_service::Service<Request<Body>> for ErrorDetailService<S>
where
    S: tower_service::Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> ResponseFuture<S::Error> {
        let deadline = request.headers().get(GRPC_TIMEOUT).and_then(|v| grpc_timeout(v.as_bytes()));
        let message_bytes_max = self.message_bytes_max;
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = match deadline {
                None => response.await?,
                Some(timeout) => match tokio::time::timeout(timeout, response).await {
                    Ok(response) => response?,
                    Err(_) => return Ok(deadline_exceeded(timeout).into_http()),
                },
            };
            Ok(with_details(response, message_bytes_max))
        })
    }
}

fn deadline_exceeded(timeout: Duration) -> Status {
    let detail =
        ErrorDetail { reason: ErrorReason::DeadlineExceeded.into(), ..ErrorDetail::default() };
    let message = format!("the client's deadline ({} ms) passed", timeout.as_millis());
    status_with_detail(Code::DeadlineExceeded, message, &detail)
}

/// A `grpc-timeout` value: at most 8 digits and a unit (gRPC over HTTP/2).
fn grpc_timeout(value: &[u8]) -> Option<Duration> {
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b"H" => Duration::from_secs(amount * 3_600),
        b"M" => Duration::from_secs(amount * 60),
        b"S" => Duration::from_secs(amount),
        b"m" => Duration::from_millis(amount),
        b"u" => Duration::from_micros(amount),
        b"n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

fn with_details(response: Response<Body>, message_bytes_max: usize) -> Response<Body> {
    let (mut parts, body) = response.into_parts();
    if parts.headers.contains_key(GRPC_STATUS) {
        // Trailers-only: the status is all there is.
        add_detail(&mut parts.headers, message_bytes_max);
        return Response::from_parts(parts, body);
    }
    let body = Body::new(DetailedTrailers { inner: body, message_bytes_max });
    Response::from_parts(parts, body)
}

/// Rewrites the status in `headers` (response headers or trailers) if it lacks a detail.
fn add_detail(headers: &mut HeaderMap, message_bytes_max: usize) {
    if headers.contains_key(GRPC_DETAILS) {
        return;
    }
    let Some(status) = Status::from_header_map(headers) else { return };
    if status.code() == Code::Ok {
        return;
    }
    let detailed = detailed(&status, message_bytes_max);
    headers.remove(GRPC_STATUS);
    headers.remove(GRPC_MESSAGE);
    if detailed.add_header(headers).is_err() {
        // Only an unencodable message fails; the code and detail alone still say it.
        let bare = status_with_detail(detailed.code(), "", &detail_of(&detailed));
        let _ = bare.add_header(headers);
    }
}

fn detail_of(status: &Status) -> ErrorDetail {
    lockmgr_proto::error_detail(status).unwrap_or_default()
}

/// The status a client should see for `status`, raised below our services.
fn detailed(status: &Status, message_bytes_max: usize) -> Status {
    let message = status.message();
    let (code, reason, limit) = match status.code() {
        // tonic's decoder: "decoded message length too large" (and its decompressed
        // twin, already RESOURCE_EXHAUSTED).
        Code::OutOfRange | Code::ResourceExhausted if message.contains("too large") => {
            (Code::ResourceExhausted, ErrorReason::MessageTooLarge, message_bytes_max)
        }
        // tonic-prost's DecodeError, and tonic's framing errors.
        Code::Internal if is_decode_error(message) => {
            (Code::InvalidArgument, ErrorReason::MalformedRequest, 0)
        }
        // tonic's own grpc-timeout, should it ever fire before ours.
        Code::Cancelled if message == "Timeout expired" => {
            (Code::DeadlineExceeded, ErrorReason::DeadlineExceeded, 0)
        }
        Code::Unimplemented => (Code::Unimplemented, ErrorReason::Unimplemented, 0),
        Code::InvalidArgument => (Code::InvalidArgument, ErrorReason::InvalidArgument, 0),
        Code::DeadlineExceeded => (Code::DeadlineExceeded, ErrorReason::DeadlineExceeded, 0),
        Code::Unavailable => (Code::Unavailable, ErrorReason::NoLeader, 0),
        code => (code, ErrorReason::Internal, 0),
    };
    let detail =
        ErrorDetail { reason: reason.into(), limit: limit as u64, ..ErrorDetail::default() };
    let message = match reason {
        ErrorReason::MessageTooLarge => {
            format!("{message} (grpc_message_bytes_max is {message_bytes_max} bytes)")
        }
        _ => message.to_owned(),
    };
    status_with_detail(code, message, &detail)
}

fn is_decode_error(message: &str) -> bool {
    message.starts_with("failed to decode Protobuf message")
        || message.starts_with("Unexpected EOF decoding stream")
        || message.starts_with("protocol error")
}

/// A response body whose trailers get [`add_detail`].
struct DetailedTrailers {
    inner: Body,
    message_bytes_max: usize,
}

impl http_body::Body for DetailedTrailers {
    type Data = tonic::codegen::Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let message_bytes_max = self.message_bytes_max;
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_trailers() {
                    Ok(mut trailers) => {
                        add_detail(&mut trailers, message_bytes_max);
                        Frame::trailers(trailers)
                    }
                    Err(frame) => frame,
                };
                Poll::Ready(Some(Ok(frame)))
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_timeouts_parse() {
        assert_eq!(grpc_timeout(b"250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(grpc_timeout(b"123456789m"), None);
        assert_eq!(grpc_timeout(b"m"), None);
        assert_eq!(grpc_timeout(b"5x"), None);
    }

    #[test]
    fn decode_errors_become_invalid_argument_with_a_detail() {
        let status = Status::internal("failed to decode Protobuf message: invalid string value");
        let malformed = detailed(&status, 4 << 20);
        assert_eq!(malformed.code(), Code::InvalidArgument);
        assert_eq!(detail_of(&malformed).reason, i32::from(ErrorReason::MalformedRequest));
        let status = Status::out_of_range("Error, decoded message length too large: found 5");
        let too_large = detailed(&status, 4 << 20);
        assert_eq!(too_large.code(), Code::ResourceExhausted);
        assert_eq!(detail_of(&too_large).limit, 4 << 20);
    }
}
