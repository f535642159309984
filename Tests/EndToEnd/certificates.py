"""Certificates made at test time by the openssl CLI, for the TLS tests: a self-signed CA, and certificates it signs
with the subject and subjectAltName a test asks for, each valid for one day."""

import subprocess


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name, subject):
    """A self-signed CA in `directory`: `name`.pem and its key `name`.key."""
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", subject,
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)


def issue(directory, name, subject, san, ca="ca"):
    """`name`.pem and its key `name`.key in `directory`: a certificate for `subject` with the subjectAltName `san`,
    signed by the CA `ca`.pem there."""
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", f"{name}.key",
            "-out", f"{name}.csr", cwd=directory)
    (directory / f"{name}.ext").write_text(f"subjectAltName={san}\n")
    openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
            "-days", "1", "-extfile", f"{name}.ext", "-out", f"{name}.pem", cwd=directory)
