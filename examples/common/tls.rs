//! TLS for the examples: rustls configurations (ring provider), certificates made at start with
//! rcgen, the `tls-exporter` channel binding (RFC 9266) and the identity of a client certificate.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use mailwire::sasl::{ChannelBinding, ChannelBindingType};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ConnectionCommon, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};

/// The label of the `tls-exporter` channel binding (RFC 9266 §2).
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// Where the system's CA bundle lives on Debian and its relatives.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A TLS setup error: a file that could not be read, a certificate rustls refused.
#[derive(Debug)]
pub struct TlsSetupError(pub String);

impl fmt::Display for TlsSetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsSetupError {}

fn err(context: &str, e: impl fmt::Display) -> TlsSetupError {
    TlsSetupError(format!("{context}: {e}"))
}

/// The crypto provider every configuration here uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A certificate chain and its private key.
pub struct Identity {
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    /// The leaf's key.
    pub key: PrivateKeyDer<'static>,
}

impl Clone for Identity {
    fn clone(&self) -> Self {
        Identity { chain: self.chain.clone(), key: self.key.clone_key() }
    }
}

impl Identity {
    /// Reads a PEM certificate chain and a PEM private key.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsSetupError> {
        let chain = load_certs(cert)?;
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| err(&format!("reading {}", key.display()), e))?;
        Ok(Identity { chain, key })
    }
}

/// Reads every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(&format!("reading {}", path.display()), e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(&format!("reading {}", path.display()), e))?;
    if certs.is_empty() {
        return Err(TlsSetupError(format!("{}: no certificate in the file", path.display())));
    }
    Ok(certs)
}

/// A throw-away certificate authority made at start: it signs the server's certificate and the
/// clients' certificates (for SASL EXTERNAL).
pub struct TestCa {
    /// The CA certificate, to trust on both sides.
    pub cert: CertificateDer<'static>,
    /// The same in PEM form, for `--ca-file` / `--client-ca`.
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl TestCa {
    /// Makes a new CA called `name`.
    pub fn new(name: &str) -> Result<Self, TlsSetupError> {
        let key = KeyPair::generate().map_err(|e| err("CA key", e))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err("CA", e))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).map_err(|e| err("CA certificate", e))?;
        Ok(TestCa { cert: cert.der().clone(), pem: cert.pem(), issuer: Issuer::new(params, key) })
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Result<Identity, TlsSetupError> {
        Ok(self.server_pem(names)?.0)
    }

    /// A server certificate, also as PEM texts (chain, key) for files.
    pub fn server_pem(&self, names: &[&str]) -> Result<(Identity, String, String), TlsSetupError> {
        let mut params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(|e| err("server certificate", e))?;
        if let Some(first) = names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.sign(params)
    }

    /// A client certificate whose common name is `user` (what SASL EXTERNAL authenticates as).
    pub fn client(&self, user: &str) -> Result<Identity, TlsSetupError> {
        Ok(self.client_pem(user)?.0)
    }

    /// A client certificate, also as PEM texts (chain, key) for `--cert` / `--key` files.
    pub fn client_pem(&self, user: &str) -> Result<(Identity, String, String), TlsSetupError> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| err("client certificate", e))?;
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(params)
    }

    fn sign(&self, mut params: CertificateParams) -> Result<(Identity, String, String), TlsSetupError> {
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().map_err(|e| err("key", e))?;
        let cert = params.signed_by(&key, &self.issuer).map_err(|e| err("signing", e))?;
        let chain_pem = format!("{}{}", cert.pem(), self.pem);
        let key_pem = key.serialize_pem();
        let key = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| err("key", e))?;
        Ok((Identity { chain: vec![cert.der().clone(), self.cert.clone()], key }, chain_pem, key_pem))
    }
}

/// A server configuration. With `client_ca`, clients may present a certificate signed by one
/// of those CAs (verified; an unverifiable one fails the handshake); clients without one are
/// still let in, and are then refused EXTERNAL by the machine.
pub fn server_config(
    identity: Identity,
    client_ca: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<ServerConfig>, TlsSetupError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", e))?;
    let builder = match client_ca {
        Some(cas) => {
            let mut roots = RootCertStore::empty();
            for ca in cas {
                roots.add(ca.clone()).map_err(|e| err("client CA", e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| err("client verifier", e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder.with_single_cert(identity.chain, identity.key).map_err(|e| err("server certificate", e))?;
    Ok(Arc::new(config))
}

/// How a client checks the server, and what it presents.
#[derive(Default, Clone)]
pub struct ClientTlsOptions {
    /// CA certificates to trust; empty means the system bundle.
    pub roots: Vec<CertificateDer<'static>>,
    /// Accept any server certificate (`--insecure`): encryption without authentication.
    pub insecure: bool,
    /// A client certificate to present (for SASL EXTERNAL).
    pub identity: Option<Identity>,
}

impl ClientTlsOptions {
    /// Reads `--ca-file`, `--cert` and `--key` as given on a command line.
    pub fn from_files(
        ca_file: Option<&Path>,
        insecure: bool,
        cert: Option<&Path>,
        key: Option<&Path>,
    ) -> Result<Self, TlsSetupError> {
        let roots = match ca_file {
            Some(path) => load_certs(path)?,
            None => Vec::new(),
        };
        let identity = match (cert, key) {
            (Some(cert), Some(key)) => Some(Identity::from_pem_files(cert, key)?),
            (None, None) => None,
            _ => return Err(TlsSetupError("--cert and --key go together".into())),
        };
        Ok(ClientTlsOptions { roots, insecure, identity })
    }
}

/// A client configuration from `options`.
pub fn client_config(options: &ClientTlsOptions) -> Result<Arc<ClientConfig>, TlsSetupError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err("TLS versions", e))?;
    let builder = if options.insecure {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        if options.roots.is_empty() {
            let system = load_certs(Path::new(SYSTEM_CA_BUNDLE))
                .map_err(|e| TlsSetupError(format!("no --ca-file and no system CA bundle: {e}")))?;
            roots.add_parsable_certificates(system);
        } else {
            for ca in &options.roots {
                roots.add(ca.clone()).map_err(|e| err("CA certificate", e))?;
            }
        }
        builder.with_root_certificates(roots)
    };
    let config = match &options.identity {
        Some(id) => builder
            .with_client_auth_cert(id.chain.clone(), id.key.clone_key())
            .map_err(|e| err("client certificate", e))?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// `--insecure`: checks the handshake signatures but not who signed the certificate.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server name to verify for `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsSetupError> {
    ServerName::try_from(host.to_string()).map_err(|e| err(&format!("server name {host}"), e))
}

/// The `tls-exporter` channel binding of an established session (RFC 9266): 32 bytes exported
/// with the label `EXPORTER-Channel-Binding` and no context. Only for TLS 1.3, where the
/// exporter is bound to the whole handshake.
pub fn channel_binding<D>(conn: &ConnectionCommon<D>) -> Option<ChannelBinding> {
    if conn.protocol_version() != Some(rustls::ProtocolVersion::TLSv1_3) {
        return None;
    }
    let data = conn.export_keying_material(vec![0u8; 32], EXPORTER_LABEL, None).ok()?;
    Some(ChannelBinding { kind: ChannelBindingType::TlsExporter, data })
}

/// The identity a verified client certificate stands for: its subject's common name, or else
/// its first e-mail or DNS subject alternative name.
pub fn certificate_identity(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::extensions::GeneralName;
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    if let Some(cn) = parsed.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()) {
        return Some(cn.to_string());
    }
    let san = parsed.subject_alternative_name().ok()??;
    san.value.general_names.iter().find_map(|name| match name {
        GeneralName::RFC822Name(n) | GeneralName::DNSName(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A one-line summary of an established session, for transcripts.
pub fn describe<D>(conn: &ConnectionCommon<D>) -> String {
    let version = conn.protocol_version().map(|v| format!("{v:?}")).unwrap_or_else(|| "?".into());
    let suite = conn.negotiated_cipher_suite().map(|s| format!("{:?}", s.suite())).unwrap_or_else(|| "?".into());
    format!("{version}, {suite}")
}
