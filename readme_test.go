package hookreg_test

import (
	"bufio"
	"os"
	"regexp"
	"strings"
	"testing"
)

// adoptDoc is the walkthrough that testdata/script/adopt_readme.txtar runs:
// docs/adoption.md up to its first "## " section (the release gate, a
// "### " section, included).
const (
	adoptDoc     = "docs/adoption.md"
	adoptSection = "# Use hookreg in your product"
)

// offline maps a README command to the one adopt_readme.txtar runs instead,
// offline: "go mod tidy" also resolves the imports of the tests of the
// dependencies (bbolt's testify), which an offline module cache need not
// hold; -e lets it write go.mod and go.sum for everything else.
var offline = map[string]string{"go mod tidy": "go mod tidy -e"}

// TestReadmeAdoption fails when the walkthrough "Use hookreg in your
// product" (docs/adoption.md) and testdata/script/adopt_readme.txtar diverge: every command of
// the section ("$ CMD" lines and the "run: CMD" steps of its workflow) must
// be a command of the script (exec, ! exec or exits), in the same order, and
// every file an "$EDITOR" line names must be written by a cp of the script.
func TestReadmeAdoption(t *testing.T) {
	readme, err := os.ReadFile(adoptDoc)
	if err != nil {
		t.Fatal(err)
	}
	cmds, edited := readmeCommands(t, string(readme))
	if len(cmds) < 10 {
		t.Fatalf("%s: section %q has %d commands, want the whole walk-through", adoptDoc, adoptSection, len(cmds))
	}
	script, err := os.ReadFile("testdata/script/adopt_readme.txtar")
	if err != nil {
		t.Fatal(err)
	}
	execs, copied := scriptCommands(string(script))
	i := 0
	for _, c := range cmds {
		if alt, ok := offline[c]; ok {
			c = alt
		}
		for i < len(execs) && execs[i] != c {
			i++
		}
		if i == len(execs) {
			t.Errorf("%s: command %q is not in adopt_readme.txtar (in this order): run it there as written", adoptDoc, c)
			i = 0
			continue
		}
		i++
	}
	for _, f := range edited {
		if !copied[f] {
			t.Errorf("%s edits %s, but adopt_readme.txtar writes no such file (cp ... %s)", adoptDoc, f, f)
		}
	}
}

// readmeCommands returns the commands of the walkthrough in order,
// and the files its $EDITOR lines name.
func readmeCommands(t *testing.T, readme string) (cmds, edited []string) {
	if !strings.HasPrefix(readme, adoptSection+"\n") {
		t.Fatalf("%s does not start with %q", adoptDoc, adoptSection)
	}
	section := readme
	if end := strings.Index(section[len(adoptSection):], "\n## "); end >= 0 {
		section = section[:len(adoptSection)+end]
	}
	run := regexp.MustCompile(`^\s+run: (.+)$`)
	inBlock := false
	sc := bufio.NewScanner(strings.NewReader(section))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			inBlock = !inBlock
			continue
		}
		if !inBlock {
			continue
		}
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			if files, ok := strings.CutPrefix(cmd, "$EDITOR "); ok {
				edited = append(edited, strings.Fields(files)...)
				continue
			}
			cmds = append(cmds, strings.TrimSpace(cmd))
		} else if m := run.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, strings.TrimSpace(m[1]))
		}
	}
	return cmds, edited
}

// scriptCommands returns the commands a testscript runs, in order, and the
// destinations of its cp commands.
func scriptCommands(script string) (cmds []string, copied map[string]bool) {
	copied = map[string]bool{}
	exits := regexp.MustCompile(`^exits \d+ `)
	for _, line := range strings.Split(script, "\n") {
		if strings.HasPrefix(line, "-- ") {
			break
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "cp" {
			copied[f[2]] = true
			continue
		}
		line = strings.TrimPrefix(line, "! ")
		if cmd, ok := strings.CutPrefix(line, "exec "); ok {
			cmds = append(cmds, cmd)
		} else if loc := exits.FindStringIndex(line); loc != nil {
			cmds = append(cmds, line[loc[1]:])
		}
	}
	return cmds, copied
}
