package migrator

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"
	"golang.org/x/crypto/ssh"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/cliflag"
)

// Flag names of encryption and signatures.
const (
	flagRecipient      = "recipient"
	flagRecipientsFile = "recipients-file"
	flagPassphraseFile = "passphrase-file"
	flagSign           = "sign"
	flagIdentity       = "identity"
	flagTrustedKey     = "trusted-key"
)

// maxKeyFile bounds a file of keys, identities or a passphrase.
const maxKeyFile = 1 << 20

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// sealFlags are the flags that encrypt and sign an archive written.
type sealFlags struct {
	recipients, recipientsFiles stringList
	passphraseFile, sign        string
}

func (f *sealFlags) register(fs *flag.FlagSet, passphrase bool) {
	fs.Var(&f.recipients, flagRecipient, "encrypt to the age or SSH public `KEY` (age1..., ssh-ed25519 ..., ssh-rsa ...); repeatable")
	fs.Var(&f.recipientsFiles, flagRecipientsFile, "encrypt to every public key in `FILE`, one a line; repeatable")
	if passphrase {
		fs.StringVar(&f.passphraseFile, flagPassphraseFile, "", "encrypt with the passphrase in `FILE` (alone: not with recipients)")
	}
	fs.StringVar(&f.sign, flagSign, "", "sign with the SSH private key in `FILE` (unencrypted)")
}

// encrypts reports whether the flags encrypt.
func (f *sealFlags) encrypts() bool {
	return len(f.recipients) > 0 || len(f.recipientsFiles) > 0 || f.passphraseFile != ""
}

// options returns the recipients and signer of the flags.
func (f *sealFlags) options() ([]age.Recipient, ssh.Signer, error) {
	var recipients []age.Recipient
	for _, r := range f.recipients {
		rec, err := parseRecipient(r)
		if err != nil {
			return nil, nil, cliflag.Usagef("--%s %q: %v", flagRecipient, r, err)
		}
		recipients = append(recipients, rec)
	}
	for _, file := range f.recipientsFiles {
		data, err := readSmallFile(file, maxKeyFile)
		if err != nil {
			return nil, nil, envErrorf("--%s: %w", flagRecipientsFile, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		n := 0
		for line := 1; sc.Scan(); line++ {
			l := strings.TrimSpace(sc.Text())
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			rec, err := parseRecipient(l)
			if err != nil {
				return nil, nil, cliflag.Usagef("--%s %s:%d: %v", flagRecipientsFile, file, line, err)
			}
			recipients = append(recipients, rec)
			n++
		}
		if n == 0 {
			return nil, nil, cliflag.Usagef("--%s %s holds no public key", flagRecipientsFile, file)
		}
	}
	if f.passphraseFile != "" {
		if len(recipients) > 0 {
			return nil, nil, cliflag.Usagef("--%s encrypts with a passphrase alone: give it or recipients, not both", flagPassphraseFile)
		}
		pass, err := readPassphrase(f.passphraseFile)
		if err != nil {
			return nil, nil, err
		}
		r, err := age.NewScryptRecipient(pass)
		if err != nil {
			return nil, nil, cliflag.Usagef("--%s: %v", flagPassphraseFile, err)
		}
		recipients = append(recipients, r)
	}
	var signer ssh.Signer
	if f.sign != "" {
		data, err := readSmallFile(f.sign, maxKeyFile)
		if err != nil {
			return nil, nil, envErrorf("--%s: %w", flagSign, err)
		}
		signer, err = ssh.ParsePrivateKey(data)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			return nil, nil, cliflag.Usagef("--%s %s is protected by a passphrase: give a key without one (kept safe by the file's permissions), or decrypt a copy with ssh-keygen -p", flagSign, f.sign)
		case err != nil:
			return nil, nil, cliflag.Usagef("--%s %s is not an SSH private key (OpenSSH or PEM format)", flagSign, f.sign)
		}
	}
	return recipients, signer, nil
}

// parseRecipient parses an age (age1...) or SSH public key.
func parseRecipient(s string) (age.Recipient, error) {
	if strings.HasPrefix(s, "ssh-") {
		return agessh.ParseRecipient(s)
	}
	if strings.HasPrefix(s, "age1") {
		return age.ParseX25519Recipient(s)
	}
	return nil, errors.New("not an age (age1...) or SSH (ssh-ed25519, ssh-rsa) public key")
}

// readPassphrase reads the passphrase in path: its first line.
func readPassphrase(path string) (string, error) {
	data, err := readSmallFile(path, maxKeyFile)
	if err != nil {
		return "", envErrorf("--%s: %w", flagPassphraseFile, err)
	}
	pass, _, _ := strings.Cut(string(data), "\n")
	pass = strings.TrimRight(pass, "\r")
	if pass == "" {
		return "", cliflag.Usagef("--%s %s: the passphrase is empty", flagPassphraseFile, path)
	}
	return pass, nil
}

// openFlags are the flags that decrypt an archive read and name the keys
// it must be signed by.
type openFlags struct {
	identities, trusted stringList
	passphraseFile      string
}

func (f *openFlags) register(fs *flag.FlagSet) {
	fs.Var(&f.identities, flagIdentity, "decrypt with the age identity or SSH private key in `FILE`; repeatable")
	fs.StringVar(&f.passphraseFile, flagPassphraseFile, "", "decrypt with the passphrase in `FILE`")
	fs.Var(&f.trusted, flagTrustedKey, "require a signature by an SSH public key in `FILE` (one a line); repeatable")
}

// files are the file flags, for the child of an offline upgrade.
func (f *openFlags) files() openFiles {
	return openFiles{Identities: f.identities, PassphraseFile: f.passphraseFile, Trusted: f.trusted}
}

// openFiles are openFlags' files.
type openFiles struct {
	Identities     []string `json:"identities,omitempty"`
	PassphraseFile string   `json:"passphrase_file,omitempty"`
	Trusted        []string `json:"trusted,omitempty"`
}

// keys reads the files of the flags. Errors name the flag and the file,
// never what the file holds.
func (o openFiles) keys() (backup.ReadKeys, error) {
	var k backup.ReadKeys
	for _, file := range o.Identities {
		data, err := readSmallFile(file, maxKeyFile)
		if err != nil {
			return k, envErrorf("--%s: %w", flagIdentity, err)
		}
		if bytes.Contains(data, []byte("-----BEGIN")) {
			id, err := agessh.ParseIdentity(data)
			var missing *ssh.PassphraseMissingError
			switch {
			case errors.As(err, &missing):
				return k, cliflag.Usagef("--%s %s is an SSH key protected by a passphrase, which this command cannot ask for: give an unprotected copy", flagIdentity, file)
			case err != nil:
				return k, cliflag.Usagef("--%s %s is not an SSH private key that age can use (ed25519 or RSA)", flagIdentity, file)
			}
			k.Identities = append(k.Identities, id)
			continue
		}
		ids, err := age.ParseIdentities(bytes.NewReader(data))
		if err != nil {
			return k, cliflag.Usagef("--%s %s is not an age identity file (AGE-SECRET-KEY-1...) or an SSH private key", flagIdentity, file)
		}
		k.Identities = append(k.Identities, ids...)
	}
	if o.PassphraseFile != "" {
		pass, err := readPassphrase(o.PassphraseFile)
		if err != nil {
			return k, err
		}
		id, err := age.NewScryptIdentity(pass)
		if err != nil {
			return k, cliflag.Usagef("--%s: %v", flagPassphraseFile, err)
		}
		k.Identities = append(k.Identities, id)
	}
	for _, file := range o.Trusted {
		data, err := readSmallFile(file, maxKeyFile)
		if err != nil {
			return k, envErrorf("--%s: %w", flagTrustedKey, err)
		}
		n := 0
		for rest := data; len(bytes.TrimSpace(rest)) > 0; n++ {
			var pub ssh.PublicKey
			pub, _, _, rest, err = ssh.ParseAuthorizedKey(rest)
			if err != nil {
				break
			}
			k.Trusted = append(k.Trusted, pub)
		}
		if n == 0 {
			return k, cliflag.Usagef("--%s %s holds no SSH public key (a line \"ssh-ed25519 AAAA...\")", flagTrustedKey, file)
		}
	}
	return k, nil
}
