//! Why a TLS handshake failed, as a small fixed set of reasons: the label
//! values of `warden_tls_handshake_failures_total`, so that whatever a peer
//! sends, the metric keeps a bounded number of series.

use std::io;

use rustls::{CertificateError, Error as RustlsError};

/// The metric counting failed handshakes, by [`HandshakeFailure::label`].
pub const HANDSHAKE_FAILURES: &str = "warden_tls_handshake_failures_total";

/// Why a handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// A client certificate was required and none was sent.
    NoClientCert,
    /// The client certificate is expired or not yet valid.
    Expired,
    /// The client certificate was not issued by `tls.client_ca`.
    UnknownCa,
    /// The client certificate is invalid otherwise (bad signature, wrong
    /// usage, unparseable, revoked...).
    BadClientCert,
    /// The client ended the handshake with an alert, typically because it
    /// does not trust the server's certificate.
    ClientAlert,
    /// The peer does not speak TLS (plain HTTP on the HTTPS port) or offers
    /// nothing in common (versions, ciphers, application protocols).
    Protocol,
    /// The handshake did not finish in time.
    Timeout,
    /// The peer closed the connection during the handshake.
    Closed,
    /// Anything else.
    Other,
}

impl HandshakeFailure {
    /// Every reason, each registered at 0 when metrics are installed.
    pub const ALL: [HandshakeFailure; 9] = [
        HandshakeFailure::NoClientCert,
        HandshakeFailure::Expired,
        HandshakeFailure::UnknownCa,
        HandshakeFailure::BadClientCert,
        HandshakeFailure::ClientAlert,
        HandshakeFailure::Protocol,
        HandshakeFailure::Timeout,
        HandshakeFailure::Closed,
        HandshakeFailure::Other,
    ];

    /// The metric's `reason` label.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::NoClientCert => "no_client_cert",
            HandshakeFailure::Expired => "expired",
            HandshakeFailure::UnknownCa => "unknown_ca",
            HandshakeFailure::BadClientCert => "bad_client_cert",
            HandshakeFailure::ClientAlert => "client_alert",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::Other => "other",
        }
    }

    /// The reason of a failed accept: tokio-rustls hands rustls' error over
    /// inside an `io::Error`, and the socket's own errors as they are.
    pub fn of(error: &io::Error) -> HandshakeFailure {
        if let Some(tls) = error.get_ref().and_then(|inner| inner.downcast_ref::<RustlsError>()) {
            return HandshakeFailure::of_tls(tls);
        }
        match error.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => HandshakeFailure::Closed,
            io::ErrorKind::TimedOut => HandshakeFailure::Timeout,
            _ => HandshakeFailure::Other,
        }
    }

    fn of_tls(error: &RustlsError) -> HandshakeFailure {
        match error {
            RustlsError::NoCertificatesPresented => HandshakeFailure::NoClientCert,
            RustlsError::InvalidCertificate(certificate) => match certificate {
                CertificateError::Expired
                | CertificateError::ExpiredContext { .. }
                | CertificateError::NotValidYet
                | CertificateError::NotValidYetContext { .. } => HandshakeFailure::Expired,
                CertificateError::UnknownIssuer => HandshakeFailure::UnknownCa,
                _ => HandshakeFailure::BadClientCert,
            },
            RustlsError::AlertReceived(_) => HandshakeFailure::ClientAlert,
            RustlsError::InappropriateMessage { .. }
            | RustlsError::InappropriateHandshakeMessage { .. }
            | RustlsError::InvalidMessage(_)
            | RustlsError::PeerIncompatible(_)
            | RustlsError::PeerMisbehaved(_)
            | RustlsError::PeerSentOversizedRecord
            | RustlsError::NoApplicationProtocol
            | RustlsError::DecryptError
            | RustlsError::UnsupportedNameType
            | RustlsError::InvalidEncryptedClientHello(_) => HandshakeFailure::Protocol,
            _ => HandshakeFailure::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_inside_io_errors_are_classified() {
        let wrap = |e: RustlsError| io::Error::new(io::ErrorKind::InvalidData, e);
        assert_eq!(HandshakeFailure::of(&wrap(RustlsError::NoCertificatesPresented)), HandshakeFailure::NoClientCert);
        let unknown = wrap(RustlsError::InvalidCertificate(CertificateError::UnknownIssuer));
        assert_eq!(HandshakeFailure::of(&unknown), HandshakeFailure::UnknownCa);
        let expired = wrap(RustlsError::InvalidCertificate(CertificateError::Expired));
        assert_eq!(HandshakeFailure::of(&expired), HandshakeFailure::Expired);
        let revoked = wrap(RustlsError::InvalidCertificate(CertificateError::Revoked));
        assert_eq!(HandshakeFailure::of(&revoked), HandshakeFailure::BadClientCert);
        let plain = wrap(RustlsError::InvalidMessage(rustls::InvalidMessage::InvalidContentType));
        assert_eq!(HandshakeFailure::of(&plain), HandshakeFailure::Protocol);
        assert_eq!(HandshakeFailure::of(&io::ErrorKind::UnexpectedEof.into()), HandshakeFailure::Closed);
        assert_eq!(HandshakeFailure::of(&io::ErrorKind::Other.into()), HandshakeFailure::Other);
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<_> = HandshakeFailure::ALL.iter().map(|r| r.label()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), HandshakeFailure::ALL.len());
    }
}
