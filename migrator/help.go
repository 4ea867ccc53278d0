package migrator

import (
	"fmt"
	"path"
	"strings"
	"text/template"

	"github.com/hookreg/hookreg/upgrade"
)

// helpData is what the help texts may use (they are text/templates):
// names derived from the program as invoked and from the linked registry,
// so that a product's binary shows its own commands, files and hooks.
type helpData struct {
	// Prog is the command as invoked: "migrator", "acmectl migrate".
	Prog string
	// Product and Release are the registry's.
	Product, Release string
	// Store, Config and Backup are example paths named after the product:
	// "acme.db", "etc/acme", "acme-5.1.0.tar.zst"; EtcdStore an example
	// etcd store: "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379/acme".
	Store, Config, Backup, EtcdStore string
	// EtcdPrefix is EtcdStore's prefix as the names of files in a
	// backup directory start with it: "acme".
	EtcdPrefix string
	// LastHook is the largest hook number ("none" without hooks).
	LastHook string
	// Old is an example of older data: the version of the registry's
	// first hook, with that hook applied ("" for a registry with fewer
	// than two hooks). OldBackup is a backup of it, OldPending its pending
	// hooks ("99, 100"), and Plan the plan of its upgrade as "plan"
	// prints it.
	Old, OldBackup, OldPending, Plan string
}

func newHelpData(e *env) *helpData {
	base := path.Base(e.reg.Product)
	if base == "" || base == "." || base == "/" {
		base = "data"
	}
	d := &helpData{
		Prog:       e.prog,
		Product:    e.reg.Product,
		Release:    e.reg.Release,
		Store:      base + ".db",
		Config:     "etc/" + base,
		Backup:     base + "-" + e.reg.Release + ".tar.zst",
		EtcdStore:  "etcd://10.0.0.1:2379,10.0.0.2:2379,10.0.0.3:2379/" + base,
		EtcdPrefix: etcdBackupName("/" + base),
		LastHook:   "none",
	}
	hooks := e.reg.Hooks
	if n := len(hooks); n > 0 {
		d.LastHook = fmt.Sprint(hooks[n-1].Num)
	}
	if len(hooks) < 2 {
		return d
	}
	first := hooks[0]
	d.Old = first.IntroducedIn
	d.OldBackup = base + "-" + d.Old + ".tar.zst"
	p, err := upgrade.PlanFor(e.reg, upgrade.Metadata{Product: e.reg.Product, DataVersion: d.Old, LastUpgradeHook: &first.Num})
	if err != nil {
		return d
	}
	nums := make([]string, len(p.Pending))
	for i, h := range p.Pending {
		nums[i] = fmt.Sprint(h.Num)
	}
	d.OldPending = strings.Join(nums, ", ")
	var b strings.Builder
	writePlanText(e, &b, &planReport{Plan: p, Store: d.Store})
	d.Plan = strings.TrimSuffix(strings.ReplaceAll(b.String(), "\n", "\n\t"), "\t")
	return d
}

// render executes the help template text of the command name; a template
// that does not execute is a bug shown as it is, with the error.
func (d *helpData) render(name, text string) string {
	t, err := template.New(name).Parse(text)
	if err != nil {
		return text + "\n(help template: " + err.Error() + ")"
	}
	var b strings.Builder
	if err := t.Execute(&b, d); err != nil {
		return text + "\n(help template: " + err.Error() + ")"
	}
	return b.String()
}
