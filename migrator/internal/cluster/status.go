package cluster

import (
	"fmt"
	"io"
	"strings"
)

// Status is what "migrator status" shows of an etcd store's cluster.
type Status struct {
	Generation  int64        `json:"generation"`
	Revision    int64        `json:"revision"`
	DBSize      int64        `json:"db_size"`
	DBSizeQuota int64        `json:"db_size_quota"`
	Members     int          `json:"members"`
	Endpoints   int          `json:"endpoints"`
	Down        []MemberDown `json:"members_down"`
	Alarms      []string     `json:"alarms"`
	Lock        *LockStatus  `json:"lock"`
	Leftover    []int64      `json:"leftover_generations"`
}

// MemberDown is a member that did not answer status, and why.
type MemberDown struct {
	Endpoint string `json:"endpoint"`
	Error    string `json:"error"`
}

// LockStatus is the migrator holding the store's lock.
type LockStatus struct {
	Key       string `json:"key"`
	Holder    string `json:"holder,omitempty"`
	Since     string `json:"since,omitempty"`
	ExpiresIn int64  `json:"expires_in_s"`
}

// WriteText writes c for people: a line of the cluster, one per member
// down, one for the lock and one for leftover generations.
func (c *Status) WriteText(w io.Writer) {
	fmt.Fprintf(w, "cluster: generation %d, revision %d, database %s of %s quota (%.0f%%), %d of %d members answered",
		c.Generation, c.Revision, bytesIEC(c.DBSize), bytesIEC(c.DBSizeQuota), 100*float64(c.DBSize)/float64(max(c.DBSizeQuota, 1)), c.Members, c.Endpoints)
	if len(c.Alarms) == 0 {
		fmt.Fprintln(w, ", no alarms")
	} else {
		fmt.Fprintf(w, "\nALARMS: %s: writes fail until they are cleared (etcdctl alarm list, compact, defrag, alarm disarm)\n", strings.Join(c.Alarms, "; "))
	}
	for _, m := range c.Down {
		fmt.Fprintf(w, "member %s is DOWN: %s\n", m.Endpoint, m.Error)
	}
	if l := c.Lock; l != nil {
		fmt.Fprintf(w, "lock: held by a migrator")
		if l.Holder != "" {
			fmt.Fprintf(w, " (%s)", l.Holder)
		}
		fmt.Fprintf(w, ", lease expires in %d s unless renewed (%s)\n", l.ExpiresIn, l.Key)
	} else {
		fmt.Fprintln(w, "lock: free")
	}
	if len(c.Leftover) > 0 {
		fmt.Fprintf(w, "leftover generations %v: left by a killed restore or offline upgrade; the next init, restore or upgrade removes them\n", c.Leftover)
	}
}

// bytesIEC formats a size: "1.5 MiB".
func bytesIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
