package migrator

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"filippo.io/age"

	"github.com/hookreg/hookreg/backup"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/failpoint"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/upgrade"
)

// childEnv names the environment variable that makes a process the child
// of an offline upgrade. The parent re-executes its own program with its
// own arguments (os.Args) and this variable set to the JSON of a
// childOptions: however the product's main routes those arguments, they
// lead to [Program.Main] again, which sees the variable and runs the
// child instead of a command. So the protocol does not depend on where the
// migrator sits in the product's command line ("acmectl migrate upgrade
// --offline ..." works as "migrator upgrade --offline ..." does).
const childEnv = "HOOKREG_OFFLINE_CHILD"

// offlineSuffix marks the private directory of an offline upgrade:
// ".OUT.offline-*" beside the output.
const offlineSuffix = ".offline-"

// offlineEvent is one line of the child's report.
type offlineEvent struct {
	// Event is "start" (a hook starts), "end" (it returned: Error is empty
	// on success), "failed" (the run stopped), "done" (the result is
	// written).
	Event        string `json:"event"`
	Num          int    `json:"num,omitempty"`
	Name         string `json:"name,omitempty"`
	IntroducedIn string `json:"introduced_in,omitempty"`
	Error        string `json:"error,omitempty"`
	// Env marks a failure that is an environment error (exit status 2).
	Env    bool   `json:"env,omitempty"`
	Millis int64  `json:"ms,omitempty"`
	From   string `json:"from,omitempty"`
	To     string `json:"to,omitempty"`
}

// runOffline is "upgrade --offline": it re-executes this program as a
// child process (the seed's temporary VM) in a private directory beside
// the output, which restores the input into an isolated store, runs the
// hooks and backs the result up. The parent then verifies the result,
// reports every hook from the child's report, and renames the result into
// place. The input is only read; on any failure there is no output file.
//
// The hooks the child ran are in the result, also on failure.
func runOffline(e *env, inPath, out string, allowDigestMismatch bool, seal offlineSeal, storeBase string) (*offlineResult, error) {
	res := &offlineResult{}
	fromStdin := inPath == stdio
	in := ""
	if !fromStdin {
		var err error
		if in, err = filepath.Abs(inPath); err != nil {
			return res, envErrorf("input %s: %w", inPath, err)
		}
		f, err := backup.OpenArchive(in)
		if err != nil {
			return res, err
		}
		defer f.Close()
		inInfo, err := f.Stat()
		if err != nil {
			return res, envErrorf("opening backup: %w", err)
		}
		if outInfo, err := os.Stat(out); err == nil && os.SameFile(inInfo, outInfo) {
			return res, cliflag.Usagef("--%s and --%s name the same file: the input is never modified", flagIn, flagOut)
		}
	}
	if err := backup.CheckOutput(out); err != nil {
		return res, err
	}
	if !fromStdin {
		// Refuse what the child would refuse before starting it: a
		// damaged backup, another product's data, data this release
		// cannot upgrade.
		if err := checkInput(e, in, inPath, seal); err != nil {
			return res, err
		}
	}
	exe, err := selfExecutable()
	if err != nil {
		return res, envErrorf("finding this program to re-execute it: %w", err)
	}
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	backup.RemoveStale(out, offlineSuffix)
	work, err := os.MkdirTemp(dir, "."+base+offlineSuffix+"*")
	if err != nil {
		return res, envErrorf("creating a private directory beside %s: %w", out, err)
	}
	defer os.RemoveAll(work)
	// Hold the private directory locked while this run lives, so that the
	// next run's clean-up of stale ones leaves it alone.
	lock, err := os.Open(work)
	if err == nil {
		err = backup.Lock(lock)
	}
	if err != nil {
		return res, envErrorf("locking the private directory: %w", err)
	}
	defer lock.Close()
	if err := failpoint.Inject("offline.private-dir"); err != nil {
		return res, err
	}
	if fromStdin {
		// The parent checks the input, then the child reads it: it
		// waits in the private directory, removed with it.
		in = filepath.Join(work, "in.tar.zst")
		if err := spoolTo(e, in); err != nil {
			return res, err
		}
		if err := checkInput(e, in, stdinName, seal); err != nil {
			return res, err
		}
	}
	if seal.runKey != nil {
		key := filepath.Join(work, "input.key")
		if err := os.WriteFile(key, []byte(seal.runKey.String()+"\n"), 0o600); err != nil {
			return res, envErrorf("writing the run's key: %w", err)
		}
		seal.files.Identities = append(seal.files.Identities, key)
	}
	result := filepath.Join(work, "result.tar.zst")
	report := filepath.Join(work, "report.jsonl")
	token := make([]byte, childTokenLen)
	if _, err := rand.Read(token); err != nil {
		return res, envErrorf("making the child's token: %w", err)
	}
	sum := sha256.Sum256(token)
	req, err := json.Marshal(childOptions{In: in, Out: result, Work: work, Report: report, RegistryDigest: e.reg.Digest, AllowDigestMismatch: allowDigestMismatch, TokenSHA256: hex.EncodeToString(sum[:]), Keys: seal.files, Sign: seal.sign, StoreBase: storeBase})
	if err != nil {
		return res, err
	}
	prog := e.phases()
	defer prog.Done()
	prog.Phase("upgrade: loading " + inPath + " in a child process")
	cmd := exec.CommandContext(e.ctx, exe, os.Args[1:]...)
	cmd.Args[0] = os.Args[0]
	cmd.Env = append(os.Environ(), childEnv+"="+string(req))
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 30 * time.Second
	stdin, err := cmd.StdinPipe() // the child exits when it closes: when we die
	if err != nil {
		return res, envErrorf("starting the child process: %w", err)
	}
	defer stdin.Close()
	childErr := &tailBuffer{max: 16 << 10}
	cmd.Stderr = childErr
	runErr := cmd.Start()
	if runErr == nil {
		// The token goes to the child on its standard input, never in
		// its environment: a copy of the environment is not a child.
		_, runErr = stdin.Write(token)
	}
	if runErr == nil {
		failpoint.Inject("offline.child-running")
		stopFollow := followReport(report, prog)
		runErr = cmd.Wait()
		stopFollow()
	}
	events, repErr := readReport(report)
	if repErr != nil {
		return res, fmt.Errorf("reading the child's report: %w", repErr)
	}
	for _, ev := range events {
		if ev.Event == "end" {
			res.Hooks = append(res.Hooks, ev)
		}
	}
	last := offlineEvent{}
	if len(events) > 0 {
		last = events[len(events)-1]
	}
	switch {
	case last.Event == "failed" && last.Env:
		return res, envErrorf("%s; nothing was written to %s", last.Error, out)
	case last.Event == "failed":
		return res, fmt.Errorf("%s; nothing was written to %s", last.Error, out)
	case runErr != nil || last.Event != "done":
		why := "ended without a result"
		if runErr != nil {
			why = runErr.Error()
		}
		if s := strings.TrimSpace(childErr.String()); s != "" {
			fmt.Fprintf(e.stderr, "%s\n", s)
		}
		if last.Event == "start" && e.ctx.Err() != nil {
			// A hook that does not heed its context keeps the child
			// running after the interrupt: it is killed WaitDelay later.
			return res, fmt.Errorf("interrupted while running hook %d (%s): the child process was stopped (%s), the hook not having returned within %s of the interrupt; nothing was written to %s", last.Num, last.Name, why, cmd.WaitDelay, out)
		}
		if last.Event == "start" {
			return res, fmt.Errorf("the child process crashed (%s) while running hook %d (%s); nothing was written to %s", why, last.Num, last.Name, out)
		}
		if e.ctx.Err() != nil {
			return res, fmt.Errorf("interrupted (%s); nothing was written to %s", why, out)
		}
		return res, fmt.Errorf("the child process failed (%s); nothing was written to %s", why, out)
	}
	prog.Phase("upgrade: checking the result")
	m, err := checkResult(e.reg, result)
	if err != nil {
		return res, fmt.Errorf("the child's result: %w; nothing was written to %s", err, out)
	}
	if err := e.ctx.Err(); err != nil {
		return res, fmt.Errorf("interrupted (%w); nothing was written to %s", err, out)
	}
	if err := backup.CheckOutput(out); err != nil {
		return res, err
	}
	if len(seal.recipients) > 0 {
		if err := sealResult(e, result, out, seal.recipients); err != nil {
			return res, err
		}
	} else if err := os.Rename(result, out); err != nil {
		return res, envErrorf("moving the result to %s: %w", out, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return res, err
	}
	res.From, res.To = last.From, m.DataVersion
	return res, nil
}

// checkInput refuses the backup at path (named name) when the child would
// refuse it: damaged, another product's data, data this release cannot
// upgrade.
func checkInput(e *env, path, name string, seal offlineSeal) error {
	f, err := backup.OpenArchive(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var head [64]byte
	n, _ := io.ReadFull(f, head[:])
	if archive.Encrypted(head[:n]) && len(seal.recipients) == 0 && !seal.plainOut {
		return cliflag.Usagef("%s is encrypted, so its upgrade must be: give the output's recipients (--%s, --%s: an age file does not name its recipients, give the same ones), or --%s", name, flagRecipient, flagRecipientsFile, flagPassphraseFile)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return envErrorf("rereading backup %s: %w", name, err)
	}
	_, err = backup.CheckSealed(e.reg, backup.ContextReader(e.ctx, f), name, seal.keys)
	return err
}

// offlineSeal is how "upgrade --offline --in" opens its input and seals
// its output: the child decrypts with files and signs with sign; the
// parent encrypts the checked result to recipients.
type offlineSeal struct {
	files      openFiles
	keys       backup.ReadKeys
	recipients []age.Recipient
	sign       string
	// runKey, when not nil, is a key of this run alone that decrypts
	// the input: written into the private directory for the child.
	runKey *age.X25519Identity
	// plainOut lets an encrypted input have an output that is not
	// (the one-command upgrade's result, which waits beside the store).
	plainOut bool
}

// sealResult writes the checked result to out encrypted to recipients:
// a temporary file beside out, renamed into place.
func sealResult(e *env, result, out string, recipients []age.Recipient) error {
	in, err := os.Open(result)
	if err != nil {
		return envErrorf("reading the result: %w", err)
	}
	defer in.Close()
	f, err := atomicfile.Create(out)
	if err != nil {
		return cliflag.Env(err)
	}
	defer f.Abort()
	enc, err := age.Encrypt(f.File, recipients...)
	if err != nil {
		return fmt.Errorf("encrypting the result: %w", err)
	}
	if _, err := io.Copy(enc, backup.ContextReader(e.ctx, in)); err != nil {
		return fmt.Errorf("encrypting the result: %w; nothing was written to %s", err, out)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("encrypting the result: %w", err)
	}
	return f.Commit()
}

// spoolTo copies standard input to the new private file path.
func spoolTo(e *env, path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return envErrorf("spooling standard input: %w", err)
	}
	_, err = io.Copy(f, backup.ContextReader(e.ctx, e.stdin))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if errors.Is(err, backup.ErrInterrupted) {
		return fmt.Errorf("reading standard input: %w", err)
	}
	if err != nil {
		return envErrorf("spooling standard input: %w", err)
	}
	return nil
}

// checkResult verifies the child's archive and that nothing is left pending.
func checkResult(reg *hook.Registry, path string) (*archive.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := backup.Verify(f, path)
	if err != nil {
		return nil, err
	}
	p, err := upgrade.PlanFor(reg, backup.ManifestMetadata(m))
	if err != nil {
		return nil, err
	}
	if len(p.Pending) > 0 || m.DataVersion != p.TargetVersion {
		return nil, fmt.Errorf("data version %s with %d hooks still pending", m.DataVersion, len(p.Pending))
	}
	return m, nil
}

// offlineResult is what an offline upgrade did.
type offlineResult struct {
	// From and To are the data versions before and after.
	From, To string
	// Hooks are the "end" events of the hooks the child ran, in order.
	Hooks []offlineEvent
}

// reportHooks prints the outcome of every hook the child ran.
func reportHooks(w io.Writer, hooks []offlineEvent) {
	for _, ev := range hooks {
		if ev.Error != "" {
			fmt.Fprintf(w, "hook %d (%s, %s): failed after %s: %s\n", ev.Num, ev.Name, ev.IntroducedIn, time.Duration(ev.Millis)*time.Millisecond, ev.Error)
		} else {
			fmt.Fprintf(w, "hook %d (%s, %s): applied in %s\n", ev.Num, ev.Name, ev.IntroducedIn, time.Duration(ev.Millis)*time.Millisecond)
		}
	}
}

// followReport shows the hooks the child starts on w (a terminal) while it
// runs, reading its report as it grows; the returned function stops it.
// With a nil w it does nothing.
func followReport(path string, prog *backup.Progress) (stop func()) {
	if prog == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		shown := 0
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			events, _ := readReport(path)
			for _, ev := range events[min(shown, len(events)):] {
				switch ev.Event {
				case "start":
					prog.Phase(fmt.Sprintf("upgrade: running hook %d (%s, %s)", ev.Num, ev.Name, ev.IntroducedIn))
				case "end":
					prog.Phase("upgrade: writing the result")
				}
			}
			shown = max(shown, len(events))
		}
	}()
	return func() {
		close(done)
		<-finished
		prog.Done()
	}
}

// readReport reads the child's events; a missing report is no events.
func readReport(path string) ([]offlineEvent, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var events []offlineEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var ev offlineEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			// A line cut short by a crash ends the report.
			break
		}
		events = append(events, ev)
	}
	return events, sc.Err()
}

// selfExecutable returns the path to re-execute this program. It is
// os.Executable, unless the program was started under another name than
// the file's (a test runner that installs one binary under several command
// names and dispatches on os.Args[0], as testscript does): then os.Args[0]
// found in PATH, so that the child runs the same command.
func selfExecutable() (string, error) {
	exe, err := os.Executable()
	if err == nil && filepath.Base(exe) == filepath.Base(os.Args[0]) {
		return exe, nil
	}
	if p, lerr := exec.LookPath(os.Args[0]); lerr == nil {
		return filepath.Abs(p)
	}
	return exe, err
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// childOptions is what the parent asks of the child process, passed in
// the environment variable childEnv.
type childOptions struct {
	// In is the backup to upgrade, Out the file to write the result to.
	In  string `json:"in"`
	Out string `json:"out"`
	// Work is the private directory of the run, Report the file to write
	// events to.
	Work   string `json:"work"`
	Report string `json:"report"`
	// RegistryDigest is the parent's registry digest.
	RegistryDigest      string `json:"registry_digest"`
	AllowDigestMismatch bool   `json:"allow_digest_mismatch,omitempty"`
	// TokenSHA256 is the hex SHA-256 of the token that the parent writes
	// first on the child's standard input: only a process the migrator
	// started itself has it.
	TokenSHA256 string `json:"token_sha256"`
	// Keys are the files that open the input (file names, not secrets);
	// Sign the SSH private key file that signs the result.
	Keys openFiles `json:"keys"`
	Sign string    `json:"sign,omitempty"`
	// StoreBase is the file name of the store whose configuration
	// directory holds it and receives the result's configuration (see
	// upgrade.Options.ConfigStoreBase).
	StoreBase string `json:"store_base,omitempty"`
}

// childTokenLen is the length of the child's token in bytes.
const childTokenLen = 32

// childTokenWait bounds the child's wait for its token.
const childTokenWait = 10 * time.Second

// isOfflineUpgrade reports whether args are those of an offline upgrade,
// the only command whose process a parent re-executes as its child.
func isOfflineUpgrade(args []string) bool {
	if len(args) == 0 || args[0] != "upgrade" {
		return false
	}
	for _, a := range args[1:] {
		switch strings.TrimLeft(a, "-") {
		case "offline", "offline=true":
			return len(a) > 0 && a[0] == '-'
		}
	}
	return false
}

// readToken reads the child's token from r, the standard input the parent
// holds, waiting at most childTokenWait.
func readToken(r io.Reader) ([]byte, error) {
	type result struct {
		token []byte
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		token := make([]byte, childTokenLen)
		_, err := io.ReadFull(r, token)
		ch <- result{token, err}
	}()
	select {
	case res := <-ch:
		return res.token, res.err
	case <-time.After(childTokenWait):
		return nil, fmt.Errorf("no token on standard input within %s", childTokenWait)
	}
}

// childRequest returns the request of the parent when this process is the
// child of an offline upgrade, and clears it from the environment, so
// that nothing the hooks start sees it.
func childRequest() (string, bool) {
	req, ok := os.LookupEnv(childEnv)
	if ok {
		os.Unsetenv(childEnv)
	}
	return req, ok
}

// runChild runs the child of an offline upgrade for the request req.
func runChild(e *env, req string) error {
	var o childOptions
	dec := json.NewDecoder(strings.NewReader(req))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return envErrorf("the offline upgrade's child process: bad request in $%s: %w", childEnv, err)
	}
	if o.In == "" || o.Out == "" || o.Work == "" || o.Report == "" || o.TokenSHA256 == "" {
		return envErrorf("the offline upgrade's child process: $%s lacks in, out, work, report or token_sha256", childEnv)
	}
	for _, p := range []string{o.Out, o.Report} {
		if filepath.Dir(p) != filepath.Clean(o.Work) {
			return envErrorf("the offline upgrade's child process: %s is not in its private directory %s", p, o.Work)
		}
	}
	return o.Run(e)
}

// checkToken refuses a child whose standard input does not start with the
// token of the request: a process started with $HOOKREG_OFFLINE_CHILD by
// anything but its parent migrator.
func (o *childOptions) checkToken(stdin io.Reader) error {
	token, err := readToken(stdin)
	if err == nil {
		sum := sha256.Sum256(token)
		if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(o.TokenSHA256)) != 1 {
			err = errors.New("the token on standard input does not match the request")
		}
	}
	if err != nil {
		return envErrorf("$%s is set, but this process was not started by an offline upgrade (%v): unset it", childEnv, err)
	}
	return nil
}

func (o *childOptions) Run(e *env) error {
	work, err := privateDir(o.Work, o.Report)
	if err != nil {
		return err
	}
	if err := o.checkToken(e.stdin); err != nil {
		return err
	}
	rep, err := os.OpenFile(o.Report, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return envErrorf("creating the report: %w", err)
	}
	defer rep.Close()
	var mu sync.Mutex
	emit := func(ev offlineEvent) {
		line, _ := json.Marshal(ev)
		mu.Lock()
		defer mu.Unlock()
		rep.Write(append(line, '\n'))
	}
	// The parent holds our standard input open; when it dies, stop and
	// leave nothing behind: the private directory, if it still is the one
	// checked above. Whoever sees the parent gone first removes it; the
	// other waits for that (once), so the process never exits half-way.
	parent := os.Getppid()
	var orphaned atomic.Bool
	var once sync.Once
	cleanup := func() {
		once.Do(func() {
			if info, err := os.Lstat(o.Work); err != nil || !os.SameFile(info, work) {
				return
			}
			// The upgrade may still create files while they are
			// removed: try until the directory is gone.
			for range 100 {
				if os.RemoveAll(o.Work) == nil {
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	go func() {
		io.Copy(io.Discard, e.stdin)
		orphaned.Store(true)
		cleanup()
		os.Exit(3)
	}()
	defer func() {
		if orphaned.Load() || os.Getppid() != parent {
			cleanup()
		}
	}()
	if err := failpoint.Inject("offline.child-started"); err != nil {
		return err
	}
	err = o.upgrade(e, emit)
	if err != nil {
		var ee *cliflag.EnvError
		emit(offlineEvent{Event: "failed", Error: err.Error(), Env: errors.As(err, &ee)})
		return err
	}
	return nil
}

// privateDir checks that work is the private directory of one offline
// upgrade, which the child may remove: a real directory (not a link) named
// ".NAME.offline-*", mode 0700, owned by this user, holding the report;
// it returns its identity.
func privateDir(work, report string) (fs.FileInfo, error) {
	info, err := os.Lstat(work)
	if err != nil {
		return nil, envErrorf("private directory: %w", err)
	}
	switch base := filepath.Base(work); {
	case !info.IsDir():
		return nil, envErrorf("private directory %s is not a directory", work)
	case !strings.HasPrefix(base, ".") || !strings.Contains(base, offlineSuffix):
		return nil, envErrorf("private directory %s is not named .NAME%s*", work, offlineSuffix)
	case privateMode && info.Mode().Perm() != 0o700:
		return nil, envErrorf("private directory %s has mode %#o, not 0700", work, info.Mode().Perm())
	case !ownedByMe(info):
		return nil, envErrorf("private directory %s is not owned by this user", work)
	case filepath.Dir(report) != filepath.Clean(work):
		return nil, envErrorf("the report %s is not in the private directory %s", report, work)
	}
	return info, nil
}

func (o *childOptions) upgrade(e *env, emit func(offlineEvent)) error {
	if o.RegistryDigest != e.reg.Digest {
		return envErrorf("the re-executed migrator has registry %s, the parent %s: the program must run the same registry when it is re-executed", e.reg.Digest, o.RegistryDigest)
	}
	keys, err := o.Keys.keys()
	if err != nil {
		return err
	}
	_, signer, err := (&sealFlags{sign: o.Sign}).options()
	if err != nil {
		return err
	}
	up, err := backup.UpgradeFile(e.ctx, observed(e.reg, emit), o.In, o.Out, o.Work, backup.UpgradeOptions{AllowDigestMismatch: o.AllowDigestMismatch, Keys: keys, Signer: signer, ConfigStoreBase: o.StoreBase})
	if err != nil {
		return err
	}
	emit(offlineEvent{Event: "done", From: up.From, To: up.Result.To})
	return nil
}

// observed returns reg with every hook wrapped to report its start and end
// to emit, so that the parent names the hook that was running when the
// child crashed. Names, versions and digests are unchanged.
func observed(reg *hook.Registry, emit func(offlineEvent)) *hook.Registry {
	r := *reg
	r.Hooks = make([]hook.Hook, len(reg.Hooks))
	for i, h := range reg.Hooks {
		fn := h.Func
		h.Func = func(ctx context.Context, tx hook.Tx) (err error) {
			emit(offlineEvent{Event: "start", Num: h.Num, Name: h.Name, IntroducedIn: h.IntroducedIn})
			start := time.Now()
			defer func() {
				ev := offlineEvent{Event: "end", Num: h.Num, Name: h.Name, IntroducedIn: h.IntroducedIn, Millis: time.Since(start).Milliseconds()}
				if p := recover(); p != nil {
					err = fmt.Errorf("panic: %v", p)
				}
				if err != nil {
					ev.Error = err.Error()
				}
				emit(ev)
			}()
			return fn(ctx, tx)
		}
		r.Hooks[i] = h
	}
	return &r
}
