//! reqwest's failures as typed [`ProviderError`]s: timeouts, connections never made, rejected
//! certificates and unreadable bodies, with their causes and without the URL.

use llm_judge_chat::ProviderError;

/// Maps a reqwest error to a [`ProviderError`], with its causes and without the URL (which may
/// carry credentials).
pub fn transport_error(e: reqwest::Error) -> ProviderError {
    let e = e.without_url();
    if e.is_timeout() {
        return ProviderError::Timeout;
    }
    if e.is_connect() && !is_certificate_error(&e) {
        // Nothing was sent: the request can go again whatever it was.
        return ProviderError::Connect(format!("{NOT_CONNECTED}: {}", chain(&e)));
    }
    let text = chain(&e);
    if is_certificate_error(&e) {
        return ProviderError::Tls(format!(
            "the provider's certificate is not trusted ({text}); for a private CA set the \
             provider's ca_file to its PEM file"
        ));
    }
    if e.is_decode() {
        ProviderError::Decode(text)
    } else {
        ProviderError::Connect(text)
    }
}

/// How a [`ProviderError::Connect`] made before anything was sent begins.
pub const NOT_CONNECTED: &str = "no connection could be made";

/// The error and every cause under it, `a: b: c`, without repeats.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let s = c.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cause = c.source();
    }
    out
}

/// Whether some cause is a rejected certificate.
fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        // An I/O error's `source` skips the error it wraps (which may be another I/O error).
        let mut inner = c;
        loop {
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                return matches!(
                    r,
                    rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
                );
            }
            match inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                Some(w) => inner = w,
                None => break,
            }
        }
        cause = c.source();
    }
    false
}
