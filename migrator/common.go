package migrator

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/internal/atomicfile"
	"github.com/hookreg/hookreg/internal/cliflag"
	"github.com/hookreg/hookreg/migrator/internal/cluster"
	"github.com/hookreg/hookreg/store"
	"github.com/hookreg/hookreg/store/bolt"
	"github.com/hookreg/hookreg/upgrade"
)

// Flag names shared by several commands.
const (
	flagStore = "store"
	flagJSON  = "json"
)

// stdio, as an archive's file name, is standard input or output.
const stdio = "-"

// stdinName names standard input in messages.
const stdinName = "standard input"

// storeUsage is the usage of --store.
const storeUsage = "the store `S`: a bbolt file path or etcd://host:port[,host:port]/prefix"

// openMode is how openStore opens a store.
type openMode int

const (
	openRead   openMode = iota // read-only, shared with other readers
	openWrite                  // read-write, the store must exist
	openCreate                 // read-write, created when missing
)

// inUse adds to the error of a bbolt store that another process holds
// what to do before a command that writes it.
func inUse(err error) error {
	return fmt.Errorf("%w: stop the process that holds it (the running product, or another migrator) and run the command again", err)
}

// openStore opens the store named by spec: a bbolt file path, or an
// etcd://host:port[,host:port]/prefix URL reached with conn. A store held
// by another process is a refused operation; a missing or unreadable one
// is an environment error.
func openStore(e *env, spec string, conn *etcdFlags, mode openMode) (store.Store, error) {
	if spec == "" {
		return nil, envErrorf("no store given")
	}
	if isEtcd(spec) {
		st, err := openEtcd(e, spec, conn, mode)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	if info, err := os.Stat(spec); err == nil && !info.Mode().IsRegular() {
		return nil, envErrorf("store %s is %s: name the store's file", spec, atomicfile.Kind(info.Mode()))
	}
	st, err := bolt.Open(spec, bolt.Options{ReadOnly: mode == openRead, Create: mode == openCreate, Context: e.ctx})
	if errors.Is(err, store.ErrInUse) && mode != openRead {
		// backup, which reads, says how to back up a running product.
		return nil, inUse(err)
	}
	if errors.Is(err, store.ErrInUse) || e.ctx.Err() != nil && errors.Is(err, e.ctx.Err()) {
		// In use, or interrupted while waiting for it: exit 1.
		return nil, err
	}
	if err != nil {
		return nil, cliflag.Env(err)
	}
	if w := st.Warning(); w != "" {
		fmt.Fprintf(e.stderr, "%s: warning: %s\n", e.prog, w)
	}
	return st, nil
}

// planReport is the output of status and plan.
type planReport struct {
	*upgrade.Plan
	// Store or Backup names the data planned.
	Store  string `json:"store,omitempty"`
	Backup string `json:"backup,omitempty"`
	// Cluster is the status of an etcd store's cluster (status only).
	Cluster *cluster.Status `json:"cluster,omitempty"`
	// Refusal is why the upgrade would be refused; empty when it may run
	// (offline at least; see OnlineOK).
	Refusal string `json:"refusal,omitempty"`
	// OfflineCommand is the command that upgrades the store offline, when
	// the online upgrade is refused (status and plan of a store).
	OfflineCommand string `json:"offline_command,omitempty"`
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// writePlanText writes r for people.
func writePlanText(e *env, w io.Writer, r *planReport) {
	p := r.Plan
	last := "none"
	if p.LastUpgradeHook != nil {
		last = fmt.Sprint(*p.LastUpgradeHook)
	}
	fmt.Fprintf(w, "data version %s, last upgrade hook %s; release %s\n", p.DataVersion, last, p.Release)
	if len(p.Covered) > 0 {
		fmt.Fprintf(w, "maintenance hooks the installing release contained: %s\n", joinInts(p.Covered))
	}
	if len(p.Applied) > 0 {
		fmt.Fprintln(w, "applied:")
		for _, a := range p.Applied {
			note := ""
			if a.AllowDigestMismatch {
				note = "  (--allow-digest-mismatch)"
			}
			if a.AmendedTo != "" {
				note += "  (amended to " + a.AmendedTo + ")"
			}
			fmt.Fprintf(w, "  hook %3d  %-7s  by %s at %s  %s%s\n", a.Num, a.Mode, a.Release, a.AppliedAt, a.Digest, note)
		}
	}
	for _, m := range p.Amended {
		fmt.Fprintf(w, "amended since applied: hook %d (%s): applied with %s, this migrator has %s: %s\n", m.Num, m.Name, m.Recorded, m.Binary, strings.Join(m.Reasons, "; "))
	}
	for _, m := range p.DigestMismatches {
		fmt.Fprintf(w, "changed since applied: hook %d (%s): applied with %s, this migrator has %s\n", m.Num, m.Name, m.Recorded, m.Binary)
	}
	if r.Refusal != "" {
		fmt.Fprintf(w, "refused: %s\n", r.Refusal)
		return
	}
	if len(p.Pending) == 0 {
		if p.TargetVersion != p.DataVersion {
			fmt.Fprintf(w, "no pending hooks; an upgrade records data version %s\n", p.TargetVersion)
		} else {
			fmt.Fprintln(w, "up to date: no pending hooks")
		}
		return
	}
	fmt.Fprintln(w, "pending, in order:")
	for _, h := range p.Pending {
		mode := "offline"
		if h.AllowOnline {
			mode = "online"
		}
		fmt.Fprintf(w, "  hook %3d  %-6s %-7s  %s\n", h.Num, h.IntroducedIn, mode, h.Name)
	}
	fmt.Fprintf(w, "after the upgrade: data version %s\n", p.TargetVersion)
	if p.OnlineOK {
		fmt.Fprintln(w, "online upgrade: allowed")
		return
	}
	var offline []string
	for _, h := range p.Pending {
		if !h.AllowOnline {
			offline = append(offline, fmt.Sprint(h.Num))
		}
	}
	cmd := r.OfflineCommand
	if cmd == "" {
		cmd = fmt.Sprintf("%s upgrade --offline --store %s", e.prog, r.Store)
	}
	if r.Store == "" {
		cmd = fmt.Sprintf("%s upgrade --offline --in %s --out FILE", e.prog, r.Backup)
	}
	fmt.Fprintf(w, "online upgrade: refused, offline hooks %s: run %q", strings.Join(offline, ", "), cmd)
	if strings.HasSuffix(cmd, " --config DIR") {
		fmt.Fprint(w, offlineAdvice)
	}
	fmt.Fprintln(w)
}

// planFor plans the upgrade of data with metadata meta. A refusal is
// reported in the plan, not as an error.
func planFor(e *env, meta upgrade.Metadata) (*planReport, error) {
	p, err := upgrade.PlanFor(e.reg, meta)
	r := &planReport{Plan: p}
	var refusal *upgrade.Refusal
	switch {
	case errors.As(err, &refusal):
		r.Refusal = refusal.Reason
	case err != nil:
		return nil, err
	default:
		if err := p.Check(false, false); errors.As(err, &refusal) {
			r.Refusal = refusal.Reason
		}
	}
	if r.Refusal != "" {
		// No upgrade runs, online or not.
		p.OnlineOK = false
	}
	return r, nil
}

// archiveReport is the output of backup, verify and restore --json.
type archiveReport struct {
	Store  string `json:"store,omitempty"`
	Config string `json:"config,omitempty"`
	Backup string `json:"backup"`
	// Revision is the etcd revision a backup of an etcd store read at.
	Revision int64             `json:"revision,omitempty"`
	Manifest *archive.Manifest `json:"manifest"`
	// Pending are the hooks pending on restored data.
	Pending []int `json:"pending,omitempty"`
}

// boltMagic is the magic number of bbolt's meta pages, at offset 16 of
// the file, in the machine's byte order (little-endian on every platform
// bbolt supports but s390x and ppc64).
const boltMagic = 0xED0CDAED

// checkBoltFile refuses a path that exists and is not a bbolt store: a
// restore replaces the whole file, which must not be anything else.
func checkBoltFile(path string) error {
	// Stat before open: opening a FIFO would block until a writer came.
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return envErrorf("--%s: %w", flagStore, err)
	}
	if !info.Mode().IsRegular() {
		return envErrorf("--%s %s is %s: a restore replaces a bbolt store file; name the store's file", flagStore, path, atomicfile.Kind(info.Mode()))
	}
	f, err := os.Open(path)
	if err != nil {
		return envErrorf("--%s: %w", flagStore, err)
	}
	defer f.Close()
	if info, err = f.Stat(); err != nil {
		return envErrorf("--%s: %w", flagStore, err)
	}
	if !info.Mode().IsRegular() {
		return envErrorf("--%s %s is %s: a restore replaces a bbolt store file; name the store's file", flagStore, path, atomicfile.Kind(info.Mode()))
	}
	if looksLikeBolt(f) {
		return nil
	}
	return fmt.Errorf("--%s %s exists and is not a bbolt store (%d bytes): a restore would replace it; check the path, or give --%s to replace it anyway", flagStore, path, info.Size(), flagForce)
}

// boltMetaFlag is the page flag of bbolt's meta pages.
const boltMetaFlag = 0x04

// looksLikeBolt reports whether f starts as a bbolt file: the magic number
// in either meta page (pages 0 and 1, 4096 bytes apart), or, for a store
// whose two meta pages are damaged (one that status tells the operator to
// restore), the headers of two meta pages: page ID 0 then 1, each with the
// meta flag.
func looksLikeBolt(f io.ReaderAt) bool {
	var page [2][20]byte
	for i := range page {
		if _, err := f.ReadAt(page[i][:], int64(i)*4096); err != nil {
			return false
		}
	}
	for _, p := range page {
		if m := binary.LittleEndian.Uint32(p[16:]); m == boltMagic || binary.BigEndian.Uint32(p[16:]) == boltMagic {
			return true
		}
	}
	for i, p := range page {
		if binary.LittleEndian.Uint64(p[0:]) != uint64(i) || binary.LittleEndian.Uint16(p[8:])&boltMetaFlag == 0 {
			return false
		}
	}
	return true
}
