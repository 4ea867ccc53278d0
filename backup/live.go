package backup

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/hookreg/hookreg/archive"
	"github.com/hookreg/hookreg/hook"
	"github.com/hookreg/hookreg/store/bolt"
)

// WriteDB writes the backup of db, the bbolt database a running product
// holds open (bbolt locks the file, so no other process can open it, the
// migrator included), to w: every table from one read transaction, so the
// archive is one consistent snapshot while the product goes on writing
// (see [Backup]; its writers wait for nothing, but bbolt keeps the pages
// of that snapshot until the backup ends, so the file may grow under heavy
// writes). The archive is the one "migrator backup" writes of the stopped
// product's store: "migrator verify" and "migrator restore" read it.
// As with [WriteTo], a failure leaves w with a partial archive that every
// reader refuses.
func WriteDB(ctx context.Context, db *bbolt.DB, reg *hook.Registry, w io.Writer, opts Options) (*archive.Manifest, error) {
	return WriteTo(ctx, bolt.FromDB(db), reg, w, opts)
}

// Handler returns an http.Handler that serves a backup of db, the
// product's open bbolt database, to a GET request (see [WriteDB]), as
// EMQX exports its data through its HTTP API: an operator backs up the
// running product with
//
//	curl -fsS -o broker.tar.zst https://broker:8443/admin/backup
//	migrator verify broker.tar.zst
//
// or pipes it on ("curl ... | migrator restore - --store copy.db"). The
// handler authenticates no one: the archive holds all the product's data,
// so mount it behind the product's own authentication, and serve it over TLS.
//
// The response is the archive, streamed with memory bounded by the
// archive's chunk size, named PRODUCT-TIME.tar.zst (or .tar) for a
// download. A backup that fails before the first byte is sent is a 500
// with the error; one that fails later ends the response short (the
// connection is aborted), which every reader refuses as truncated. A
// client that goes away stops the backup.
func Handler(db *bbolt.DB, reg *hook.Registry, opts Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "a backup is read with GET", http.StatusMethodNotAllowed)
			return
		}
		ext := ".tar.zst"
		if opts.Compression == archive.None {
			ext = ".tar"
		}
		name := fmt.Sprintf("%s-%s%s", fileSafe(reg.Product), time.Now().UTC().Format("20060102T150405Z"), ext)
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
		w.Header().Set("Cache-Control", "no-store")
		if r.Method == http.MethodHead {
			return
		}
		sw := &startedWriter{w: w}
		if _, err := WriteDB(r.Context(), db, reg, sw, opts); err != nil {
			if !sw.started {
				w.Header().Del("Content-Disposition")
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			// The client has a partial archive: end it short.
			panic(http.ErrAbortHandler)
		}
	})
}

// startedWriter records whether anything was written.
type startedWriter struct {
	w       io.Writer
	started bool
}

func (s *startedWriter) Write(p []byte) (int, error) {
	s.started = true
	return s.w.Write(p)
}

// fileSafe keeps the bytes of s that are safe in a file name.
func fileSafe(s string) string {
	s = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
	if s == "" {
		return "backup"
	}
	return s
}
