package migrator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/upgrade"
)

func init() {
	register(&spec{
		Name:    "upgrade",
		Summary: "run the pending hooks: online on a store, or offline on a stopped product's store or a backup",
		Usage: `
Usage: {{.Prog}} upgrade --online --store S [--config DIR] [--allow-digest-mismatch] [--json]
       {{.Prog}} upgrade --offline --store S [--config DIR] [--allow-digest-mismatch] [--json]
       {{.Prog}} upgrade --offline --store etcd://HOST:PORT/PREFIX [--backup-dir DIR] [--allow-digest-mismatch] [--json]
       {{.Prog}} upgrade --offline --in FILE --out FILE [--allow-digest-mismatch] [--json]

Runs the pending hooks in ascending order, each in one transaction with its
metadata update, so that after a crash every hook is fully applied or not at
all and a re-run resumes.

--online upgrades the live store S in place. It is refused, listing them,
when a pending hook does not allow online. Hooks see the configuration
directory --config DIR (none when omitted) read-only.

--offline --store S is the upgrade of a stopped product in one command: it
backs S (and the configuration directory DIR) up beside S, to
S.pre-upgrade-VERSION-TIME.tar.zst, which it keeps; upgrades that backup in
a child process (hooks may change the configuration files); verifies the
result; and swaps it in as S (and DIR) atomically. S is always either the
old store or the upgraded one. A run that is killed is completed by running
it again (before the product starts): once the upgraded backup is verified
it waits beside S as .S.upgraded.tar.zst until it is swapped in.

S may lie directly in DIR (--store /data/app.db --config /data): S, its
pre-upgrade backups and the hidden files named after it (.S.*) are then not
configuration; backup, restore and both upgrades leave them out of the
configuration and keep them ("{{.Prog}} help restore").

--offline --in FILE --out FILE upgrades the backup FILE into a new backup
in a child process; the input is never modified. --in - reads the backup
from standard input: it is copied into the run's private directory beside
the output (removed when the run ends), checked, then upgraded. An
encrypted FILE is opened with --identity or --passphrase-file, a signed one
checked with --trusted-key (as in "{{.Prog}} help restore"); its output is
encrypted too, to --recipient/--recipients-file (an age file does not name
its recipients: give the same ones) or the same --passphrase-file, and
signed with --sign KEY.

S is a bbolt file path, or an etcd cluster and key prefix,
etcd://host:port[,host:port]/prefix, reached with the --etcd-* flags
("{{.Prog}} help etcd"). On etcd, --online takes the store's lock, so a
second migrator is refused; the product keeps writing meanwhile. It warns
on stderr, once, with the figures, when the cluster's database passes half
its quota (--quota-backend-bytes) while it runs; so does --offline, before
it restores the upgraded data.

--offline --store etcd://... is the same one command for a stopped
product's cluster store, holding the store's lock throughout (a second
migrator is refused): it backs the store up at one revision R into the
directory --backup-dir DIR (default: the current directory), to
PREFIX.pre-upgrade-VERSION-TIME.tar.zst (PREFIX with "/" as "_"), which it
keeps; upgrades that backup in a child process, in a private directory
beside it; and restores the result into the store as a new generation,
verified, then made current in one transaction, which also checks that
nothing of the old data was written after R. The product must be stopped:
a write or delete it made after R would be lost, so the upgrade is then
refused, naming the key, with the old data left current and intact; stop
the product and run it again. The configuration files are the store's
table "_config" (--config is refused). A kill leaves the old data current,
or the upgraded data current and whole: running the command again redoes
the upgrade, or finds nothing left to do.

Refused, with nothing written: another product's data, a data version newer
than this release, a downgrade, data older than the oldest version this
release upgrades, and an applied hook whose code digest changed (unless
--allow-digest-mismatch, which is recorded with the hooks it applies). A
hook that fails or panics stops the run, naming it; its transaction is
rolled back. SIGINT or SIGTERM stop between hooks or batches; run again to
resume. With --json, one JSON object: from, to, the applied hooks, and the
pre-upgrade backup.

On a terminal, progress goes to standard error: each phase of the work on
a line, with a rate and an ETA where its total is known.
HOOKREG_PROGRESS=0 turns it off; standard output, and standard error that
is not a terminal, never carry it.

Examples:

	$ {{.Prog}} upgrade --online --store {{.Store}}
	upgraded {{.Store}} from data version {{if .Old}}{{.Old}}{{else}}{{.Release}}{{end}} to {{.Release}}: ...
	$ {{.Prog}} upgrade --offline --store {{.Store}} --config {{.Config}}
	...
	upgraded {{.Store}} and {{.Config}} from data version {{if .Old}}{{.Old}}{{else}}{{.Release}}{{end}} to {{.Release}}
	pre-upgrade backup: {{.Store}}.pre-upgrade-{{if .Old}}{{.Old}}{{else}}{{.Release}}{{end}}-20260101T000000Z.tar.zst
	$ {{.Prog}} upgrade --offline --store {{.EtcdStore}} --backup-dir /var/backups
	...
	upgraded {{.EtcdStore}} from data version {{if .Old}}{{.Old}}{{else}}{{.Release}}{{end}} to {{.Release}}
	pre-upgrade backup: /var/backups/{{.EtcdPrefix}}.pre-upgrade-{{if .Old}}{{.Old}}{{else}}{{.Release}}{{end}}-20260101T000000Z.tar.zst (revision 1874)
	$ HOOKREG_ETCD_PASSWORD=... {{.Prog}} upgrade --online --store {{.EtcdStore}} --etcd-user migrator
	...
`,
		New: func() command { return &upgradeOptions{} },
	})
}

// Flag names of upgrade.
const (
	flagOnline              = "online"
	flagOffline             = "offline"
	flagConfig              = "config"
	flagIn                  = "in"
	flagOut                 = "out"
	flagAllowDigestMismatch = "allow-digest-mismatch"
	flagBackupDir           = "backup-dir"
)

type upgradeOptions struct {
	etcd                etcdFlags
	store               string
	online              bool
	offline             bool
	config              string
	in                  string
	out                 string
	allowDigestMismatch bool
	backupDir           string
	json                bool
	keys                openFlags
	seal                sealFlags
	// configNew: a one-command offline upgrade without --config of a
	// store that keeps no configuration files (see configWritten).
	configNew bool
}

func (o *upgradeOptions) Flags(fs *flag.FlagSet) {
	fs.StringVar(&o.store, flagStore, "", storeUsage)
	o.etcd.register(fs)
	fs.BoolVar(&o.online, flagOnline, false, "upgrade the live store --store in place")
	fs.BoolVar(&o.offline, flagOffline, false, "upgrade the stopped product's --store, or the backup --in into the backup --out")
	fs.StringVar(&o.config, flagConfig, "", "the configuration `DIR` of the store")
	fs.StringVar(&o.in, flagIn, "", "the backup `FILE` to upgrade offline (- for standard input)")
	fs.StringVar(&o.out, flagOut, "", "the upgraded backup `FILE` to write")
	fs.BoolVar(&o.allowDigestMismatch, flagAllowDigestMismatch, false, "proceed although an applied hook's code changed (recorded)")
	fs.StringVar(&o.backupDir, flagBackupDir, ".", "--offline --store etcd://...: the `DIR` of the pre-upgrade backup")
	fs.BoolVar(&o.json, flagJSON, false, "print one JSON object")
	o.keys.register(fs)
	o.seal.register(fs, false)
}

func (o *upgradeOptions) Validate(args []string) error {
	if err := cliflag.Exactly(args); err != nil {
		return err
	}
	switch {
	case o.online == o.offline:
		return cliflag.Usagef("give either --%s or --%s", flagOnline, flagOffline)
	case o.online && o.store == "":
		return cliflag.Usagef("--%s needs --%s", flagOnline, flagStore)
	case o.online && (o.in != "" || o.out != ""):
		return cliflag.Usagef("--%s and --%s are for --%s", flagIn, flagOut, flagOffline)
	case o.offline && o.store != "" && (o.in != "" || o.out != ""):
		return cliflag.Usagef("--%s upgrades either --%s or --%s and --%s", flagOffline, flagStore, flagIn, flagOut)
	case o.offline && o.store == "" && (o.in == "" || o.out == ""):
		return cliflag.Usagef("--%s needs --%s, or --%s and --%s", flagOffline, flagStore, flagIn, flagOut)
	case o.offline && o.in != "" && o.config != "":
		return cliflag.Usagef("--%s is for --%s: a backup carries its configuration files", flagConfig, flagStore)
	case o.offline && isEtcd(o.store) && o.config != "":
		return cliflag.Usagef("--%s: an etcd store keeps its configuration files in the store (the table %q); upgrade without --%s", flagConfig, store.ConfigTable, flagConfig)
	case (len(o.keys.identities) > 0 || len(o.keys.trusted) > 0 || o.keys.passphraseFile != "" ||
		((o.seal.encrypts() || o.seal.sign != "") && !(o.offline && o.store != "" && !isEtcd(o.store)))) && !(o.offline && o.in != ""):
		return cliflag.Usagef("--%s, --%s, --%s, --%s, --%s and --%s are for --%s --%s (--%s, --%s and --%s also for --%s --%s FILE, where they seal the pre-upgrade backup)", flagIdentity, flagPassphraseFile, flagTrustedKey, flagRecipient, flagRecipientsFile, flagSign, flagOffline, flagIn, flagRecipient, flagRecipientsFile, flagSign, flagOffline, flagStore)
	case o.backupDir != "." && !(o.offline && isEtcd(o.store)):
		return cliflag.Usagef("--%s is for --%s --%s etcd://...: a bbolt store's pre-upgrade backup goes beside it", flagBackupDir, flagOffline, flagStore)
	}
	return nil
}

// upgradeReport is the output of upgrade --json.
type upgradeReport struct {
	Store string `json:"store,omitempty"`
	In    string `json:"in,omitempty"`
	Out   string `json:"out,omitempty"`
	// From and To are the data versions before and after.
	From    string        `json:"from"`
	To      string        `json:"to"`
	Applied []appliedHook `json:"applied"`
	// PreUpgradeBackup is the backup of the store taken before an
	// offline upgrade of a store.
	PreUpgradeBackup string `json:"pre_upgrade_backup,omitempty"`
	// Revision is the etcd store's revision the pre-upgrade backup was
	// read at.
	Revision int64 `json:"revision,omitempty"`
	// Resumed reports that the run completed an interrupted one.
	Resumed bool `json:"resumed,omitempty"`
	// ConfigInStore are the configuration files that the hooks of a
	// one-command offline upgrade without --config wrote into the table
	// _config of a store that kept none.
	ConfigInStore []string `json:"config_in_store,omitempty"`
}

type appliedHook struct {
	Num          int    `json:"num"`
	Name         string `json:"name,omitempty"`
	IntroducedIn string `json:"introduced_in,omitempty"`
	Millis       int64  `json:"ms"`
}

func (o *upgradeOptions) Run(e *env) error {
	if err := checkConfigDir(o.config); err != nil {
		return err
	}
	if !isEtcd(o.store) {
		if err := backup.CheckLayout(o.store, o.config); err != nil {
			return err
		}
	}
	switch {
	case o.offline && isEtcd(o.store):
		return o.runOfflineEtcd(e)
	case o.offline && o.store != "":
		if err := backup.CheckReplaceable(o.store, o.config); err != nil {
			return err
		}
		return o.runOfflineStore(e)
	case o.offline:
		return o.runOfflineBackup(e)
	}
	return o.runOnline(e)
}

func (o *upgradeOptions) runOnline(e *env) error {
	st, err := openStore(e, o.store, &o.etcd, openWrite)
	if err != nil {
		return err
	}
	defer st.Close()
	config := upgrade.DirConfig(o.config)
	if !isEtcd(o.store) {
		// A store directly in its configuration directory: complete the
		// configuration swap of a killed restore (the store is held
		// exclusively), and keep the store's files out of the hooks' view.
		if err := backup.FinishConfigSwap(o.store, o.config); err != nil {
			return err
		}
		if base, in := backup.StoreInConfig(o.store, o.config); in {
			config = upgrade.DirConfigWithStore(o.config, base)
		}
	}
	res, err := upgrade.Run(e.ctx, st, e.reg, upgrade.Options{
		Online:              true,
		AllowDigestMismatch: o.allowDigestMismatch,
		Config:              config,
		Log:                 e.progress,
		Warn:                e.stderr,
	})
	r := upgradeReport{Store: o.store, From: res.From, To: res.To, Applied: []appliedHook{}}
	for _, a := range res.Applied {
		h, _ := e.reg.Lookup(a.Num)
		r.Applied = append(r.Applied, appliedHook{Num: a.Num, Name: h.Name, IntroducedIn: h.IntroducedIn})
	}
	switch {
	case o.json:
	case res.To != res.From:
		fmt.Fprintf(e.stdout, "upgraded %s from data version %s to %s: %s\n", o.store, res.From, res.To, hookList(res.Applied))
	case len(res.Applied) > 0:
		// A run stopped before the last hook of a release: the data
		// version moves once every hook of its release is applied.
		fmt.Fprintf(e.stdout, "applied to %s: %s; data version still %s\n", o.store, hookList(res.Applied), res.To)
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("%s: %w; what is committed stays, run the upgrade again to resume", o.store, err)
		}
		return storeError(e, o.store, st, o.config, err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	if o.json {
		return writeJSON(e.stdout, r)
	}
	if len(res.Applied) == 0 && res.To == res.From {
		fmt.Fprintf(e.stdout, "%s is up to date: data version %s, no pending hooks\n", o.store, res.To)
	}
	return nil
}

// runOfflineBackup is "upgrade --offline --in FILE --out FILE".
func (o *upgradeOptions) runOfflineBackup(e *env) error {
	if err := checkOut(o.out); err != nil {
		return err
	}
	seal, err := o.sealing(e)
	if err != nil {
		return err
	}
	res, err := runOffline(e, o.in, o.out, o.allowDigestMismatch, seal, "")
	if !o.json {
		reportHooks(e.stdout, res.Hooks)
	}
	if err != nil {
		return err
	}
	if o.json {
		return writeJSON(e.stdout, upgradeReport{In: o.in, Out: o.out, From: res.From, To: res.To, Applied: appliedHooks(res.Hooks)})
	}
	name := o.in
	if name == stdio {
		name = stdinName
	}
	fmt.Fprintf(e.stdout, "upgraded %s to %s: data version %s to %s\n", name, o.out, res.From, res.To)
	return nil
}

// sealing reads the keys of "upgrade --offline --in": those that open the
// input, and those that seal the output. A passphrase opens the input and
// encrypts the output.
func (o *upgradeOptions) sealing(e *env) (offlineSeal, error) {
	s := offlineSeal{files: o.keys.files(), sign: o.seal.sign}
	var err error
	if s.keys, err = s.files.keys(); err != nil {
		return s, err
	}
	seal := o.seal
	if !seal.encrypts() {
		seal.passphraseFile = o.keys.passphraseFile
	}
	if s.recipients, _, err = seal.options(); err != nil {
		return s, err
	}
	if o.seal.sign != "" {
		if _, _, err := (&sealFlags{sign: o.seal.sign}).options(); err != nil {
			return s, err
		}
	}
	return s, nil
}

// appliedHooks lists the hooks the child applied.
func appliedHooks(events []offlineEvent) []appliedHook {
	list := []appliedHook{}
	for _, ev := range events {
		if ev.Error == "" {
			list = append(list, appliedHook{Num: ev.Num, Name: ev.Name, IntroducedIn: ev.IntroducedIn, Millis: ev.Millis})
		}
	}
	return list
}

// hookList describes applied hooks: "hooks 98, 99".
func hookList(applied []upgrade.Applied) string {
	if len(applied) == 0 {
		return "no hooks"
	}
	nums := make([]int, len(applied))
	for i, a := range applied {
		nums[i] = a.Num
	}
	if len(nums) == 1 {
		return fmt.Sprintf("hook %d", nums[0])
	}
	return "hooks " + joinInts(nums)
}

// offlineCommand is the command that upgrades the store at path (open as
// st) offline. For a bbolt file that keeps no configuration files in its
// table _config it names --config: the offline hooks may rewrite the
// product's configuration files, which an upgrade without --config would
// put in that table, where a product that reads a directory never sees
// them. configDir is the --config the operator gave, if any.
func offlineCommand(e *env, path string, st store.Store, configDir string) string {
	cmd := fmt.Sprintf("%s upgrade --offline --store %s", e.prog, path)
	switch {
	case isEtcd(path):
		return cmd
	case configDir != "":
		return cmd + " --config " + configDir
	case st != nil && hasConfigTable(st):
		return cmd
	}
	return cmd + " --config DIR"
}

// offlineAdvice follows an offline command that names --config DIR.
const offlineAdvice = " (DIR: the product's configuration directory, which offline hooks may rewrite; omit --config only for a product that keeps none)"

// suggestOffline says to run cmd, explaining its DIR placeholder.
func suggestOffline(cmd string) string {
	s := fmt.Sprintf("stop the product and run %q", cmd)
	if strings.HasSuffix(cmd, " --config DIR") {
		s += offlineAdvice
	}
	return s
}

// hasConfigTable reports whether the store keeps configuration files in
// its table _config.
func hasConfigTable(st store.Store) bool {
	tx, err := st.Begin(false)
	if err != nil {
		return false
	}
	defer tx.Rollback()
	_, err = tx.Table(store.ConfigTable)
	return err == nil
}

// heldData returns the path of a table of st that holds data (see
// upgrade.HeldData), or nil when there is none, st is nil or cannot be
// read.
func heldData(st store.Store) []string {
	if st == nil {
		return nil
	}
	held, err := upgrade.HeldDataIn(st)
	if err != nil {
		return nil
	}
	return held
}

// storeError adds to an error about the store path (open as st, or nil)
// what the operator can do: how to initialize a store without metadata,
// how to run the offline upgrade that an online one was refused for.
func storeError(e *env, path string, st store.Store, configDir string, err error) error {
	var refusal *upgrade.Refusal
	switch {
	case errors.Is(err, upgrade.ErrNotInitialized):
		if held := heldData(st); held != nil {
			// A fresh install's init would refuse this store.
			return fmt.Errorf("%s: %w, and holds data (table %s is not empty): run \"%s init --store %s --data-version V\" to adopt the data, V being the release that wrote it, or restore a backup",
				path, err, hook.FormatPath(held), e.prog, path)
		}
		return fmt.Errorf("%s: %w: run \"%s init --store %s\" for a fresh install, \"%s init --store %s --data-version V\" to adopt data written by release V before hookreg, or restore a backup",
			path, err, e.prog, path, e.prog, path)
	case errors.As(err, &refusal) && refusal.Offline:
		return fmt.Errorf("%s: %w: %s", path, err, suggestOffline(offlineCommand(e, path, st, configDir)))
	}
	return fmt.Errorf("%s: %w", path, err)
}
