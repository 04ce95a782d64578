//! Shared by the TLS tests: certificates made on the spot (rcgen), and a small
//! HTTP/1.1 client over tokio-rustls that holds one connection at a time (so
//! a test knows which connection a request went over) and shows the
//! certificate the server presented.

#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::client::Resumption;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, SupportedProtocolVersion};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// Longest a request (connect, handshake, answer) may take before it counts as failed.
const PATIENCE: Duration = Duration::from_secs(30);
/// Largest response body read: the tests' answers are a few kilobytes.
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A certificate authority.
pub struct Authority {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate with its private key.
pub struct Issued {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Authority {
    pub fn new(name: &str) -> Authority {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority { cert, key }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A server certificate for `localhost` and `127.0.0.1`.
    pub fn issue_server(&self) -> Issued {
        let mut params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, "warden test server");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(params)
    }

    /// A client certificate valid now.
    pub fn issue_client(&self, name: &str) -> Issued {
        self.issue(client_params(name))
    }

    /// A client certificate that expired in 2001.
    pub fn issue_expired_client(&self, name: &str) -> Issued {
        let mut params = client_params(name);
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
        self.issue(params)
    }

    fn issue(&self, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        Issued { cert_pem: cert.pem(), key_pem: key.serialize_pem(), der: cert.der().clone() }
    }
}

fn client_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params
}

impl Issued {
    /// sha256 of the certificate's DER, as `cert_sha256` wants it.
    pub fn sha256(&self) -> [u8; 32] {
        sha256(&self.der)
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256())
    }

    /// Writes `NAME.pem` and `NAME.key` into `dir` and returns their paths.
    pub fn write(&self, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let cert = dir.join(format!("{name}.pem"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&cert, &self.cert_pem).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        (cert, key)
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        use rustls::pki_types::pem::PemObject;
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }
}

pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// A TLS client trusting `ca`, optionally presenting a client certificate.
#[derive(Clone)]
pub struct Client {
    config: Arc<ClientConfig>,
}

impl Client {
    pub fn new(ca: &Authority, identity: Option<&Issued>) -> Client {
        Client::with_versions(ca, identity, rustls::ALL_VERSIONS)
    }

    /// A client that speaks only the given TLS versions.
    pub fn with_versions(
        ca: &Authority,
        identity: Option<&Issued>,
        versions: &[&'static SupportedProtocolVersion],
    ) -> Client {
        let mut roots = RootCertStore::empty();
        roots.add(ca.cert.der().clone()).unwrap();
        let builder = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        let mut config = match identity {
            Some(identity) => builder.with_client_auth_cert(vec![identity.der.clone()], identity.key_der()).unwrap(),
            None => builder.with_no_client_auth(),
        };
        // Every connection makes a full handshake: what the tests check is
        // what a new client meets.
        config.resumption = Resumption::disabled();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Client { config: Arc::new(config) }
    }

    pub async fn connect(&self, address: SocketAddr) -> io::Result<Connection> {
        let connect = async {
            let tcp = TcpStream::connect(address).await?;
            tcp.set_nodelay(true)?;
            let name = ServerName::try_from("localhost").unwrap();
            TlsConnector::from(self.config.clone()).connect(name, tcp).await
        };
        let stream = tokio::time::timeout(PATIENCE, connect).await.map_err(|_| io::ErrorKind::TimedOut)??;
        let server_cert = stream.get_ref().1.peer_certificates().and_then(|chain| chain.first()).expect("server cert");
        let server_cert_sha256 = sha256(server_cert);
        let version = stream.get_ref().1.protocol_version();
        Ok(Connection { stream: BufReader::new(stream), server_cert_sha256, version })
    }

    /// One request over a new connection.
    pub async fn request(
        &self,
        address: SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> io::Result<Answer> {
        self.connect(address).await?.request(method, path, token, body).await
    }
}

/// One TLS connection, kept alive across requests.
pub struct Connection {
    stream: BufReader<TlsStream<TcpStream>>,
    /// sha256 of the leaf certificate the server presented.
    pub server_cert_sha256: [u8; 32],
    /// The negotiated TLS version.
    pub version: Option<rustls::ProtocolVersion>,
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Answer {
    /// Asserts `status` and returns the body.
    #[track_caller]
    pub fn expect(self, status: u16) -> Value {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self.body
    }

    /// Asserts an RFC 9457 problem with `status` whose detail contains `field`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, field: &str) {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        assert_eq!(self.content_type, "application/problem+json", "body: {}", self.body);
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(field), "detail `{detail}` does not name `{field}`");
    }
}

impl Connection {
    /// Sends `bytes` as they are and reads everything until the server closes
    /// (with or without a TLS close_notify: a server giving up on a broken
    /// request may just close).
    pub async fn raw(&mut self, bytes: &[u8]) -> io::Result<Vec<u8>> {
        self.stream.get_mut().write_all(bytes).await?;
        let mut received = Vec::new();
        let read = tokio::time::timeout(PATIENCE, self.stream.read_to_end(&mut received)).await;
        match read.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))? {
            Ok(_) => Ok(received),
            Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => Ok(received),
            Err(error) => Err(error),
        }
    }

    /// Sends one HTTP/1.1 request on this connection and reads its answer.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> io::Result<Answer> {
        tokio::time::timeout(PATIENCE, self.exchange(method, path, token, body))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> io::Result<Answer> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n", body.len());
        if !body.is_empty() {
            head += "Content-Type: application/json\r\n";
        }
        if let Some(token) = token {
            head += &format!("Authorization: Bearer {token}\r\n");
        }
        head += "\r\n";
        let stream = self.stream.get_mut();
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.flush().await?;

        let status_line = self.line().await?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| invalid(format!("not an HTTP status line: {status_line:?}")))?;
        let (mut length, mut chunked, mut content_type) = (None, false, String::new());
        loop {
            let line = self.line().await?;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("bad header {line:?}")))?;
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = Some(value.parse::<usize>().map_err(|e| invalid(e.to_string()))?),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "content-type" => content_type = value.to_owned(),
                _ => {}
            }
        }
        let bytes = if chunked { self.chunked_body().await? } else { self.sized_body(length.unwrap_or(0)).await? };
        let body =
            serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
        Ok(Answer { status, content_type, body })
    }

    async fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.stream.read_line(&mut line).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    async fn sized_body(&mut self, length: usize) -> io::Result<Vec<u8>> {
        if length > MAX_BODY {
            return Err(invalid(format!("body of {length} bytes")));
        }
        let mut bytes = vec![0; length];
        self.stream.read_exact(&mut bytes).await?;
        Ok(bytes)
    }

    async fn chunked_body(&mut self) -> io::Result<Vec<u8>> {
        let mut bytes = Vec::new();
        loop {
            let size = self.line().await?;
            let size = usize::from_str_radix(size.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|e| invalid(e.to_string()))?;
            if size == 0 {
                self.line().await?;
                return Ok(bytes);
            }
            bytes.extend(self.sized_body(size).await?);
            self.line().await?;
            if bytes.len() > MAX_BODY {
                return Err(invalid("body too large".to_owned()));
            }
        }
    }
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// Sends a plain-HTTP request to `address` and returns every byte the server
/// sent back before closing (or before the patience ran out).
pub async fn plain_http_exchange(address: SocketAddr) -> Vec<u8> {
    let exchange = async {
        let mut tcp = TcpStream::connect(address).await?;
        tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").await?;
        let mut received = Vec::new();
        // A reset after the server's alert is an end like any other.
        let _ = tcp.read_to_end(&mut received).await;
        io::Result::Ok(received)
    };
    tokio::time::timeout(PATIENCE, exchange).await.expect("the server closes the connection").expect("connects")
}

/// The value of the counter `warden_tls_handshake_failures_total{reason}` in
/// a Prometheus text page (0 when absent).
pub fn handshake_failures(metrics: &str, reason: &str) -> u64 {
    let series = format!("warden_tls_handshake_failures_total{{reason=\"{reason}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |value| value.trim().parse().expect("a counter value"))
}
