package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/spf13/cobra"
)

// Set by the build (Makefile, make deb, vagrant/build-artifacts.sh):
//
//	-ldflags "-X main.version=1.2.0 -X main.commit=0123abcd -X main.buildDate=2026-11-29T18:00:00Z"
//
// Left empty, they are taken from what the Go toolchain stamped into the
// binary (debug.ReadBuildInfo: the module version and the VCS revision).
var (
	version   string
	commit    string
	buildDate string
)

// buildInfo is what `drover version` prints and /v1/status reports.
type buildInfo struct {
	Version string `json:"version"`
	Commit  string `json:"commit,omitempty"`
	// Modified is true when the binary was built from a tree with
	// uncommitted changes (known only from the Go toolchain's stamp).
	Modified bool `json:"modified,omitempty"`
	// BuildDate is when the build ran (RFC 3339), set by the build only;
	// CommitDate is the commit's time, from the toolchain's stamp.
	BuildDate  string `json:"build_date,omitempty"`
	CommitDate string `json:"commit_date,omitempty"`
	GoVersion  string `json:"go_version"`
	Platform   string `json:"platform"`
}

// build returns this binary's build information, computed once.
var build = sync.OnceValue(func() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return resolveBuild(version, commit, buildDate, bi)
})

// resolveBuild fills what the build did not set from the toolchain's stamp.
func resolveBuild(ver, rev, date string, bi *debug.BuildInfo) buildInfo {
	info := buildInfo{Version: ver, Commit: rev, BuildDate: date,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	// The Makefile marks a build from a modified tree as COMMIT-dirty.
	if c, ok := strings.CutSuffix(rev, "-dirty"); ok {
		info.Commit, info.Modified = c, true
	}
	if bi == nil {
		if info.Version == "" {
			info.Version = "dev"
		}
		return info
	}
	if bi.GoVersion != "" {
		info.GoVersion = bi.GoVersion
	}
	if info.Version == "" {
		// "(devel)" is what a build without a module version says.
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			info.Version = v
		} else {
			info.Version = "dev"
		}
	}
	if rev == "" {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Commit = s.Value
			case "vcs.time":
				info.CommitDate = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	return info
}

// short is a commit hash shortened for text output.
func short(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// line is the one-line form `drover --version` prints.
func (b buildInfo) line() string {
	parts := []string{}
	if b.Commit != "" {
		c := "commit " + short(b.Commit)
		if b.Modified {
			c += " (modified)"
		}
		parts = append(parts, c)
	}
	if b.BuildDate != "" {
		parts = append(parts, "built "+b.BuildDate)
	}
	parts = append(parts, b.GoVersion+" "+b.Platform)
	return fmt.Sprintf("drover %s (%s)", b.Version, strings.Join(parts, ", "))
}

// write prints b as text or JSON.
func (b buildInfo) write(w io.Writer, output string) error {
	if output == "json" {
		return writeJSON(w, b)
	}
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	c := or(b.Commit, "unknown")
	if b.Modified {
		c += " (modified)"
	}
	_, err := fmt.Fprintf(w, "drover %s\n  commit:     %s\n", b.Version, c)
	if err == nil && b.CommitDate != "" {
		_, err = fmt.Fprintf(w, "  committed:  %s\n", b.CommitDate)
	}
	if err == nil {
		_, err = fmt.Fprintf(w, "  built:      %s\n  go:         %s %s\n", or(b.BuildDate, "unknown (not set by the build)"), b.GoVersion, b.Platform)
	}
	return err
}

func newVersionCmd(g *globalFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print drover's version, commit, build date and Go version",
		Long: `Print the version, the commit it was built from, the build date and the Go
version. Release builds (make build, make deb) set them; a plain 'go build'
reports the commit and its date from the Go toolchain's stamp, and the version
"dev". --output json prints one object (version, commit, modified, build_date,
commit_date, go_version, platform). 'drover --version' prints one line.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return build().write(cmd.OutOrStdout(), g.output)
		},
	}
}
