//! Certificates for TLS tests, made with the `openssl` command: a CA, and keys and
//! certificates it signs for brokers and clients.

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed");
    assert!(
        status.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&status.stderr)
    );
}

/// A CA, and a key and certificate signed by it for `name` (with `san` when it is a server).
pub fn issue(dir: &Path, ca: &str, name: &str, san: Option<&str>) {
    request(dir, name, false);
    let ext = format!("{name}.ext");
    // Version 3 certificates with the usual extensions; rustls refuses version 1.
    let extensions = match san {
        Some(san) => format!("subjectAltName={san}\nextendedKeyUsage=serverAuth\n"),
        None => "extendedKeyUsage=clientAuth\n".to_owned(),
    };
    std::fs::write(dir.join(&ext), extensions).unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            &format!("{name}.pem"),
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
}

/// `openssl req` with a new P-256 key: a self-signed (CA) certificate, or a signing request.
fn request(dir: &Path, name: &str, self_signed: bool) {
    let (key, subject) = (format!("{name}.key"), format!("/CN={name}"));
    let out = format!("{name}.{}", if self_signed { "pem" } else { "csr" });
    let mut args = vec!["req"];
    if self_signed {
        args.extend(["-x509", "-days", "2"]);
    }
    args.extend(["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]);
    args.extend(["-keyout", &key, "-out", &out, "-subj", &subject]);
    openssl(dir, &args);
}

pub fn make_ca(dir: &Path, name: &str) {
    request(dir, name, true);
}
