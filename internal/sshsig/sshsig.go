// Package sshsig signs and verifies with SSH keys in OpenSSH's signature
// format (PROTOCOL.sshsig: "ssh-keygen -Y sign" and "ssh-keygen -Y
// verify"), over a SHA-256 digest the caller computed, so that a signed
// message need not be held in memory.
//
// A backup archive's signature is one of these over its SHA256SUMS, in
// the namespace [Namespace]; an operator checks it with
//
//	ssh-keygen -Y verify -f allowed_signers -I backup -n hookreg-backup -s SHA256SUMS.sig < SHA256SUMS
package sshsig

import (
	"bytes"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"

	"golang.org/x/crypto/ssh"
)

// Namespace is the namespace of a backup archive's signature: a signature
// made for anything else (git commits, files) never verifies as one.
const Namespace = "hookreg-backup"

const (
	magic     = "SSHSIG"
	version   = 1
	hashAlg   = "sha256"
	pemType   = "SSH SIGNATURE"
	maxArmor  = 16 << 10
	digestLen = 32
)

// signedData is what the key signs (PROTOCOL.sshsig).
type signedData struct {
	Namespace string
	Reserved  string
	HashAlg   string
	Hash      string
}

// blob is the signature's wire form, after the magic.
type blob struct {
	Version   uint32
	PublicKey string
	Namespace string
	Reserved  string
	HashAlg   string
	Signature string
}

// Sign signs the SHA-256 digest of a message in namespace with signer and
// returns the armored signature, as "ssh-keygen -Y sign" writes it.
func Sign(signer ssh.Signer, namespace string, digest []byte) ([]byte, error) {
	if len(digest) != digestLen {
		return nil, fmt.Errorf("signing: a digest of %d bytes, want %d", len(digest), digestLen)
	}
	data := append([]byte(magic), ssh.Marshal(signedData{Namespace: namespace, HashAlg: hashAlg, Hash: string(digest)})...)
	var sig *ssh.Signature
	var err error
	if as, ok := signer.(ssh.AlgorithmSigner); ok && signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		// OpenSSH refuses SHA-1 RSA signatures.
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("signing: %w", err)
	}
	b := append([]byte(magic), ssh.Marshal(blob{
		Version:   version,
		PublicKey: string(signer.PublicKey().Marshal()),
		Namespace: namespace,
		HashAlg:   hashAlg,
		Signature: string(ssh.Marshal(sig)),
	})...)
	return pem.EncodeToMemory(&pem.Block{Type: pemType, Bytes: b}), nil
}

// ErrBadSignature is wrapped by Verify's errors about the signature
// itself: malformed, of another namespace, or not over the digest.
var ErrBadSignature = errors.New("bad signature")

// Verify checks that armored is a signature of the SHA-256 digest in
// namespace, and returns the public key that made it. Whether that key is
// trusted is the caller's business.
func Verify(armored []byte, namespace string, digest []byte) (ssh.PublicKey, error) {
	if len(armored) > maxArmor {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadSignature, len(armored), maxArmor)
	}
	p, rest := pem.Decode(armored)
	if p == nil || p.Type != pemType || len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%w: not one armored SSH signature", ErrBadSignature)
	}
	if !bytes.HasPrefix(p.Bytes, []byte(magic)) {
		return nil, fmt.Errorf("%w: no %s magic", ErrBadSignature, magic)
	}
	var b blob
	if err := ssh.Unmarshal(p.Bytes[len(magic):], &b); err != nil {
		return nil, fmt.Errorf("%w: malformed: %v", ErrBadSignature, err)
	}
	switch {
	case b.Version != version:
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadSignature, b.Version, version)
	case b.Namespace != namespace:
		return nil, fmt.Errorf("%w: made for %q, not %q", ErrBadSignature, b.Namespace, namespace)
	case b.HashAlg != hashAlg:
		return nil, fmt.Errorf("%w: hash %q, want %q", ErrBadSignature, b.HashAlg, hashAlg)
	}
	pub, err := ssh.ParsePublicKey([]byte(b.PublicKey))
	if err != nil {
		return nil, fmt.Errorf("%w: its public key: %v", ErrBadSignature, err)
	}
	var sig ssh.Signature
	if err := ssh.Unmarshal([]byte(b.Signature), &sig); err != nil {
		return nil, fmt.Errorf("%w: malformed: %v", ErrBadSignature, err)
	}
	if pub.Type() == ssh.KeyAlgoRSA && sig.Format == ssh.KeyAlgoRSA {
		return nil, fmt.Errorf("%w: an RSA signature with SHA-1", ErrBadSignature)
	}
	data := append([]byte(magic), ssh.Marshal(signedData{Namespace: namespace, HashAlg: hashAlg, Hash: string(digest)})...)
	if err := pub.Verify(data, &sig); err != nil {
		return nil, fmt.Errorf("%w: it does not match the data (signed by %s)", ErrBadSignature, ssh.FingerprintSHA256(pub))
	}
	return pub, nil
}
