//! A throw-away certificate authority, made with the `openssl` command, so that the local stack
//! can be reached over HTTPS exactly as AWS is: the function binaries verify the proxy's
//! certificate through their normal trust store, which `SSL_CERT_FILE` points at.
//!
//! The chain has the shape of an AWS endpoint's: an RSA-2048 leaf signed by an RSA-2048
//! intermediate signed by an RSA root, the server sending leaf and intermediate. The trust
//! bundle handed to the functions is the machine's whole system bundle plus the throw-away root,
//! so loading and parsing it costs what loading the system bundle costs on Lambda.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Where Debian, Ubuntu and Amazon Linux keep the system trust bundle.
pub const SYSTEM_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The files of one throw-away CA and the server certificate it issued for 127.0.0.1.
#[derive(Debug, Clone)]
pub struct ThrowawayCa {
    /// The root certificate, PEM.
    pub root: PathBuf,
    /// The server's chain (leaf, then intermediate), PEM.
    pub server_chain: PathBuf,
    /// The server's private key, PEM (PKCS#8).
    pub server_key: PathBuf,
    /// The system bundle plus the throw-away root: what `SSL_CERT_FILE` names.
    pub trust_bundle: PathBuf,
    /// The machine's system bundle that `trust_bundle` starts from.
    pub system_bundle: PathBuf,
    /// How many certificates the trust bundle holds.
    pub bundle_certificates: usize,
}

impl ThrowawayCa {
    /// Makes a CA, an intermediate and a server certificate for `127.0.0.1` and `localhost`
    /// in `dir` (valid one day).
    pub fn create(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = |name: &str| dir.join(name);
        let openssl = |args: &[&str]| -> Result<()> {
            let output = Command::new("openssl")
                .args(args)
                .current_dir(dir)
                .output()
                .context("cannot run `openssl`: install it (Debian: apt-get install openssl)")?;
            if !output.status.success() {
                bail!(
                    "openssl {} failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            Ok(())
        };
        std::fs::write(
            file("ca.ext"),
            "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n",
        )?;
        std::fs::write(
            file("server.ext"),
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n\
             authorityKeyIdentifier=keyid\n",
        )?;
        let rsa = ["-newkey", "rsa:2048", "-nodes"];
        let root_subject = "/CN=cognito-user-sync throw-away root";
        openssl(
            &[
                &[
                    "req", "-x509", "-keyout", "root.key", "-out", "root.pem", "-days", "2",
                ][..],
                &rsa,
                &[
                    "-subj",
                    root_subject,
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                ],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]
            .concat(),
        )?;
        // A key and certificate `name` for `subject`, signed by `issuer` with `extensions`.
        let issue = |name: &str, subject: &str, issuer: &str, serial: &str, extensions: &str| {
            let (key, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            openssl(
                &[
                    &["req", "-keyout", &key, "-out", &csr, "-subj", subject][..],
                    &rsa,
                ]
                .concat(),
            )?;
            let (issuer_pem, issuer_key) = (format!("{issuer}.pem"), format!("{issuer}.key"));
            openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &issuer_pem,
                "-CAkey",
                &issuer_key,
                "-set_serial",
                serial,
                "-days",
                "1",
                "-extfile",
                extensions,
                "-out",
                &pem,
            ])
        };
        issue(
            "intermediate",
            "/CN=cognito-user-sync throw-away intermediate",
            "root",
            "2",
            "ca.ext",
        )?;
        issue("server", "/CN=127.0.0.1", "intermediate", "3", "server.ext")?;

        let chain = [
            std::fs::read_to_string(file("server.pem"))?,
            std::fs::read_to_string(file("intermediate.pem"))?,
        ]
        .concat();
        std::fs::write(file("server-chain.pem"), chain)?;
        let (system_bundle, system) = SYSTEM_BUNDLES
            .iter()
            .find_map(|path| Some((PathBuf::from(path), std::fs::read_to_string(path).ok()?)))
            .with_context(|| {
                format!(
                    "no system trust bundle at {}: install ca-certificates",
                    SYSTEM_BUNDLES.join(" or ")
                )
            })?;
        let bundle = [system, std::fs::read_to_string(file("root.pem"))?].join("\n");
        let bundle_certificates = bundle.matches("-----BEGIN CERTIFICATE-----").count();
        std::fs::write(file("trust-bundle.pem"), bundle)?;
        Ok(Self {
            root: file("root.pem"),
            server_chain: file("server-chain.pem"),
            server_key: file("server.key"),
            system_bundle,
            trust_bundle: file("trust-bundle.pem"),
            bundle_certificates,
        })
    }

    /// A rustls server configuration presenting the server chain.
    pub fn server_config(&self) -> Result<rustls::ServerConfig> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(&self.server_chain)
            .context("cannot read the server chain")?
            .collect::<Result<Vec<_>, _>>()
            .context("the server chain is not PEM")?;
        let key = PrivateKeyDer::from_pem_file(&self.server_key).context("cannot read the server key")?;
        let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("rustls protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .context("the server certificate and key do not match")?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}
