package migrator

import (
	"flag"
	"fmt"
	"strings"

	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
)

// envFlags are the flags that the environment gives defaults for, as
// goose and atlas read theirs: HOOKREG_STORE is --store, HOOKREG_CONFIG is
// --config, and HOOKREG_ETCD_* the connection of an etcd:// store (see
// also envEtcdPassword).
var envFlags = []struct{ flag, env string }{
	{flagStore, "HOOKREG_STORE"},
	{flagConfig, "HOOKREG_CONFIG"},
	{flagIdentity, envIdentity},
	{flagTrustedKey, envTrustedKey},
	{flagEtcdCACert, "HOOKREG_ETCD_CACERT"},
	{flagEtcdCert, "HOOKREG_ETCD_CERT"},
	{flagEtcdKey, "HOOKREG_ETCD_KEY"},
	{flagEtcdUser, "HOOKREG_ETCD_USER"},
	{flagEtcdPasswordFile, "HOOKREG_ETCD_PASSWORD_FILE"},
	{flagEtcdTimeout, "HOOKREG_ETCD_TIMEOUT"},
}

// The variables of --identity and --trusted-key, which name files: they
// apply whatever the data read (--in, --backup too).
const (
	envIdentity   = "HOOKREG_IDENTITY"
	envTrustedKey = "HOOKREG_TRUSTED_KEY"
)

// replacesStore are the flags that name the data instead of --store: with
// one of them on the command line, the environment gives no --store or
// --config ("plan --backup FILE", "upgrade --offline --in FILE").
var replacesStore = []string{flagBackup, flagIn}

// envDefaults is a command whose --store and --config default to the
// environment (see envFlags), for the commands that have them, when the
// command line gives neither them nor a flag of replacesStore. --config
// comes from the environment only with --store: the configuration
// directory of the environment's store is not another store's, so
// "restore X --store scratch.db" never replaces $HOOKREG_CONFIG.
type envDefaults struct {
	command
	getenv func(string) string
	fs     *flag.FlagSet
	// fromEnv are the flags the environment gave, in envFlags' order.
	fromEnv []envValue
}

// envValue is a flag's value taken from an environment variable.
type envValue struct{ flag, env, value string }

func (c *envDefaults) Flags(fs *flag.FlagSet) {
	c.command.Flags(fs)
	c.fs = fs
	for _, ef := range envFlags {
		if f := fs.Lookup(ef.flag); f != nil {
			f.Usage += " (default: $" + ef.env + ")"
		}
	}
}

func (c *envDefaults) Validate(args []string) error {
	set := map[string]bool{}
	c.fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	replaced := false
	for _, name := range replacesStore {
		replaced = replaced || set[name]
	}
	for _, ef := range envFlags {
		f := c.fs.Lookup(ef.flag)
		v := strings.TrimSpace(c.getenv(ef.env))
		keyFlag := ef.flag == flagIdentity || ef.flag == flagTrustedKey
		if f == nil || set[ef.flag] || replaced && !keyFlag || v == "" {
			continue
		}
		if ef.flag == flagConfig && set[flagStore] {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			return cliflag.Usagef("invalid value %q of $%s (the default of --%s): %v", v, ef.env, ef.flag, err)
		}
		c.fromEnv = append(c.fromEnv, envValue{ef.flag, ef.env, v})
	}
	// An etcd URL is checked before anything can print it: one with a
	// password in it is refused without repeating it. A migrator built
	// without the cluster store refuses it, and the --etcd-* flags.
	if f := c.fs.Lookup(flagStore); f != nil && isEtcd(f.Value.String()) {
		b, err := clusterBackend()
		if err != nil {
			return err
		}
		if _, _, err := b.ParseURL(f.Value.String()); err != nil {
			return cliflag.Usagef("--%s: %v", flagStore, err)
		}
	}
	if cluster.Registered() == nil {
		for name := range set {
			if strings.HasPrefix(name, "etcd-") {
				_, err := clusterBackend()
				return err
			}
		}
	}
	return c.command.Validate(args)
}

// Run runs the command; an error that names a value the environment gave
// says so, since the user typed no such flag.
func (c *envDefaults) Run(e *env) error {
	err := c.command.Run(e)
	if err == nil {
		return nil
	}
	var notes []string
	for _, v := range c.fromEnv {
		if v.flag != flagEtcdPasswordFile && namesPath(err.Error(), v.value) {
			notes = append(notes, fmt.Sprintf("$%s gave --%s %s", v.env, v.flag, v.value))
		}
	}
	if len(notes) == 0 {
		return err
	}
	return fmt.Errorf("%w (%s)", err, strings.Join(notes, "; "))
}

// namesPath reports whether msg names path as a word of its own: not
// inside a longer name.
func namesPath(msg, path string) bool {
	for i := 0; ; {
		j := strings.Index(msg[i:], path)
		if j < 0 {
			return false
		}
		start, end := i+j, i+j+len(path)
		before, after := byte(' '), byte(' ')
		if start > 0 {
			before = msg[start-1]
		}
		if end < len(msg) {
			after = msg[end]
		}
		if strings.IndexByte(" \"'(=", before) >= 0 && strings.IndexByte(" \"':,;)", after) >= 0 {
			return true
		}
		i = start + 1
	}
}
