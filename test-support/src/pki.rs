//! A certificate authority made by the test, and server certificates it signs, as files:
//! what a self-hosted deployment with its own CA has. Also Chromium's trust in that CA (an
//! NSS database under a fresh `HOME`).

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SerialNumber, date_time_ymd,
};

/// A CA: its certificate (in `dir/<name>-ca.pem`) and its key, to sign with.
pub struct TestCa {
    dir: PathBuf,
    name: String,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct CertFiles {
    /// The certificate (just the leaf; the CA is the trust anchor).
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

/// What the server certificate says.
#[derive(Debug, Clone)]
pub struct Leaf<'a> {
    /// Host names and IP addresses it is for.
    pub names: &'a [&'a str],
    /// Its serial number, for telling certificates apart.
    pub serial: u64,
    /// Valid from 2000 to 2001 only, so expired now.
    pub expired: bool,
}

impl Default for Leaf<'_> {
    /// For 127.0.0.1, ::1 and localhost, serial 1, valid now.
    fn default() -> Self {
        Leaf {
            names: &["127.0.0.1", "::1", "localhost"],
            serial: 1,
            expired: false,
        }
    }
}

impl TestCa {
    /// A fresh CA named `name` (also its common name), its certificate written to `dir`
    /// (created if needed).
    pub fn new(dir: &Path, name: &str) -> TestCa {
        std::fs::create_dir_all(dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().unwrap();
        let pem = params.self_signed(&key).unwrap().pem();
        std::fs::write(dir.join(format!("{name}-ca.pem")), &pem).unwrap();
        TestCa {
            dir: dir.to_owned(),
            name: name.to_owned(),
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The file holding [`pem`](Self::pem).
    pub fn pem_path(&self) -> PathBuf {
        self.dir.join(format!("{}-ca.pem", self.name))
    }

    /// Signs a server certificate as `leaf` says, written to `dir/<stem>.pem` and
    /// `dir/<stem>.key` (replacing what was there).
    pub fn issue(&self, stem: &str, leaf: &Leaf<'_>) -> CertFiles {
        let names: Vec<String> = leaf.names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{stem} {}", leaf.serial));
        params.serial_number = Some(SerialNumber::from(leaf.serial));
        if leaf.expired {
            params.not_before = date_time_ymd(2000, 1, 1);
            params.not_after = date_time_ymd(2001, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let pem = params.signed_by(&key, &self.issuer).unwrap().pem();
        let files = CertFiles {
            cert: self.dir.join(format!("{stem}.pem")),
            key: self.dir.join(format!("{stem}.key")),
        };
        std::fs::write(&files.cert, pem).unwrap();
        std::fs::write(&files.key, key.serialize_pem()).unwrap();
        files
    }

    /// An NSS database under `home/.pki/nssdb` that trusts this CA for servers: Chromium
    /// started with `HOME=home` accepts the CA's certificates and nothing else of ours.
    /// Needs `certutil` (Debian package `libnss3-tools`).
    pub fn trust_in_nss(&self, home: &Path) {
        let nssdb = home.join(".pki/nssdb");
        std::fs::create_dir_all(&nssdb).unwrap();
        let db = format!("sql:{}", nssdb.display());
        let ca = self.pem_path();
        let ca = ca.to_str().unwrap();
        for args in [
            vec!["-N", "-d", &db, "--empty-password"],
            vec!["-A", "-d", &db, "-t", "C,,", "-n", &self.name, "-i", ca],
        ] {
            let status = Command::new("certutil").args(&args).status().unwrap();
            assert!(status.success(), "certutil {args:?}");
        }
    }
}
