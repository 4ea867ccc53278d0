package backup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"filippo.io/age"
	"filippo.io/age/armor"
	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/internal/sshsig"
)

// ReadKeys are what reading a sealed archive takes: the identities that
// decrypt an encrypted one, and the keys whose signature it must carry.
type ReadKeys struct {
	// Identities decrypt an archive encrypted with age (X25519, SSH or
	// passphrase identities). An encrypted archive without them is
	// refused with an error wrapping [ErrEncrypted].
	Identities []age.Identity
	// Trusted, when not empty, are the only keys whose signature is
	// accepted: an unsigned archive, or one signed by another key, is
	// refused from its manifest, before anything is written, with an
	// error wrapping [ErrUntrusted]. Without them a signature is still
	// checked against the key that made it (damage, not forgery).
	Trusted []ssh.PublicKey
}

var (
	// ErrEncrypted is wrapped by the refusal of an encrypted archive
	// read without an identity that decrypts it.
	ErrEncrypted = errors.New("encrypted with age")
	// ErrUntrusted is wrapped by the refusal of an archive that is not
	// signed by a trusted key.
	ErrUntrusted = errors.New("not signed by a trusted key")
)

// Decrypt returns the archive in r: r itself, or, when r is an age file
// (binary or armored), its plaintext, decrypted with the first of
// identities that matches by a goroutine of its own, a few chunks ahead
// of the reader, so that decryption overlaps the decoding of the archive
// (memory: [decryptAhead] buffers of [decryptBuffer] bytes). An age file
// without identities, or with none that matches, is refused before
// anything is read from it; a damaged ciphertext (a flipped byte, a
// truncation) fails the read at that 64 KiB chunk with an error wrapping
// [archive.ErrInvalid].
//
// Close stops the decryption and waits until it no longer reads r, so
// that r may be read again (or seeked) once Close returns; it does not
// close r.
func Decrypt(r io.Reader, name string, identities []age.Identity) (io.ReadCloser, error) {
	src := &sourceErr{r: r}
	br := bufio.NewReaderSize(src, 64<<10)
	head, _ := br.Peek(64)
	if !archive.Encrypted(head) {
		return io.NopCloser(br), nil
	}
	if len(identities) == 0 {
		return nil, fmt.Errorf("%s: %w: give --identity FILE (or $HOOKREG_IDENTITY), or --passphrase-file FILE for a passphrase", name, ErrEncrypted)
	}
	var in io.Reader = br
	if !bytesHasPrefix(head, "age-encryption.org/") {
		in = armor.NewReader(br)
	}
	dr, err := age.Decrypt(in, identities...)
	var nomatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nomatch):
		return nil, fmt.Errorf("%s: %w, and no identity given decrypts it: it was encrypted to other recipients (or with another passphrase): check --identity and --passphrase-file", name, ErrEncrypted)
	case err != nil && src.err != nil:
		return nil, envErrorf("reading backup %s: %w", name, src.err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w: its age header: %w", name, archive.ErrInvalid, err)
	}
	return decryptAheadOf(&plaintext{r: dr, src: src}), nil
}

const (
	// decryptBuffer is the size of a buffer of plaintext decrypted ahead:
	// four of age's 64 KiB chunks.
	decryptBuffer = 256 << 10
	// decryptAhead is how many buffers the decrypting goroutine fills
	// ahead of the reader.
	decryptAhead = 4
)

// ahead reads r on a goroutine of its own into buffers that it hands to
// Read, at most decryptAhead of them ahead.
type ahead struct {
	full chan []byte
	free chan []byte
	stop chan struct{}
	done chan struct{}
	err  error  // r's last error, read once full is closed
	cur  []byte // the unread part of the buffer being read
	buf  []byte // the buffer being read, to give back
	once sync.Once
}

func decryptAheadOf(r io.Reader) *ahead {
	a := &ahead{
		full: make(chan []byte, decryptAhead),
		free: make(chan []byte, decryptAhead+1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for range decryptAhead + 1 {
		a.free <- make([]byte, decryptBuffer)
	}
	go func() {
		defer close(a.done)
		defer close(a.full)
		for {
			var buf []byte
			select {
			case buf = <-a.free:
			case <-a.stop:
				return
			}
			n, err := io.ReadFull(r, buf)
			if err == io.ErrUnexpectedEOF {
				err = io.EOF
			}
			if n > 0 {
				select {
				case a.full <- buf[:n]:
				case <-a.stop:
					return
				}
			}
			if err != nil {
				a.err = err
				return
			}
		}
	}()
	return a
}

func (a *ahead) Read(p []byte) (int, error) {
	if len(a.cur) == 0 {
		if a.buf != nil {
			a.free <- a.buf[:cap(a.buf)]
			a.buf = nil
		}
		buf, ok := <-a.full
		if !ok {
			return 0, a.err
		}
		a.buf, a.cur = buf, buf
	}
	n := copy(p, a.cur)
	a.cur = a.cur[n:]
	return n, nil
}

// Close stops the goroutine and waits for it.
func (a *ahead) Close() error {
	a.once.Do(func() { close(a.stop) })
	<-a.done
	return nil
}

func bytesHasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// sourceErr remembers an error of the underlying reader.
type sourceErr struct {
	r   io.Reader
	err error
}

func (s *sourceErr) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// plaintext is the decrypted archive: an error of the decryption that is
// not the source's is damage.
type plaintext struct {
	r   io.Reader
	src *sourceErr
}

func (p *plaintext) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if err != nil && err != io.EOF && p.src.err == nil {
		err = fmt.Errorf("%w: decrypting: %w", archive.ErrInvalid, err)
	}
	return n, err
}

// backupSealed is [Backup] encrypted to opts.Recipients.
func backupSealed(backup func(w io.Writer) (*archive.Manifest, error), w io.Writer, recipients []age.Recipient) (*archive.Manifest, error) {
	enc, err := age.Encrypt(w, recipients...)
	if err != nil {
		return nil, fmt.Errorf("backing up: encrypting: %w", err)
	}
	m, err := backup(enc)
	if err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("backing up: encrypting: %w", err)
	}
	return m, nil
}

// signer returns the archive's signing function for s, nil for none.
func signer(s ssh.Signer) func([]byte) ([]byte, error) {
	if s == nil {
		return nil
	}
	return func(digest []byte) ([]byte, error) { return sshsig.Sign(s, sshsig.Namespace, digest) }
}

// Fingerprint is a key's SHA-256 fingerprint, as ssh-keygen -l prints it
// and a signed archive's manifest names its signer.
func Fingerprint(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }

// trust adds to h the checks of the archive's signature: the manifest
// names a trusted signer (when keys.Trusted is set), and the signature
// verifies, by the key the manifest names.
func trust(h *archive.Handler, name string, keys ReadKeys, refused *error) {
	var signedBy string
	manifest := h.Manifest
	h.Manifest = func(m archive.Manifest) error {
		signedBy = m.SignedBy
		if len(keys.Trusted) > 0 {
			switch {
			case m.SignedBy == "":
				*refused = fmt.Errorf("%w: it is unsigned, and a signature by %s is required", ErrUntrusted, trustedList(keys.Trusted))
				return *refused
			case !slices.ContainsFunc(keys.Trusted, func(k ssh.PublicKey) bool { return Fingerprint(k) == m.SignedBy }):
				*refused = fmt.Errorf("%w: it is signed by %s, not by %s", ErrUntrusted, m.SignedBy, trustedList(keys.Trusted))
				return *refused
			}
		}
		if manifest != nil {
			return manifest(m)
		}
		return nil
	}
	h.Signature = func(digest, sig []byte) error {
		pub, err := sshsig.Verify(sig, sshsig.Namespace, digest)
		if err != nil {
			return fmt.Errorf("%w: member %s: %w", archive.ErrInvalid, archive.SigName, err)
		}
		if fp := Fingerprint(pub); fp != signedBy {
			return fmt.Errorf("%w: member %s: made by %s, the manifest says %s", archive.ErrInvalid, archive.SigName, fp, signedBy)
		}
		return nil
	}
}

func trustedList(keys []ssh.PublicKey) string {
	s := ""
	for i, k := range keys {
		if i > 0 {
			s += " or "
		}
		s += Fingerprint(k)
	}
	return s
}
