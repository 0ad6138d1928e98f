package atomicfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestWrite(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	tests := []struct {
		name    string
		before  string // "" = no file yet
		data    string
		mode    fs.FileMode
		wantErr bool
	}{
		{name: "new file", data: "hello\n", mode: 0o644},
		{name: "replaces", before: "old", data: "new", mode: 0o600},
		{name: "exact mode past the umask", data: "x", mode: 0o755},
		{name: "empty", before: "old", data: "", mode: 0o640},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "f")
			if tt.before != "" {
				if err := os.WriteFile(path, []byte(tt.before), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := Write(path, []byte(tt.data), tt.mode); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || string(got) != tt.data {
				t.Fatalf("content %q, %v; want %q", got, err, tt.data)
			}
			st, _ := os.Stat(path)
			if st.Mode().Perm() != tt.mode {
				t.Errorf("mode %o, want %o", st.Mode().Perm(), tt.mode)
			}
			onlyFile(t, dir)
		})
	}
}

// TestWriteFuncFails: a failing fill leaves the old file as it was, no
// temp file behind, and its error comes back unchanged.
func TestWriteFuncFails(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := os.WriteFile(path, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteFunc(path, 0o644, func(w io.Writer) error {
		io.WriteString(w, "half")
		return errFill
	})
	if !errors.Is(err, errFill) {
		t.Fatalf("err = %v, want the fill's error", err)
	}
	if got, _ := os.ReadFile(path); string(got) != "old" {
		t.Errorf("content %q, want the old one", got)
	}
	onlyFile(t, dir)
}

// TestCreate: Create writes a new file whole and never replaces one.
func TestCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	if err := Create(path, []byte("first"), 0o640); err != nil {
		t.Fatal(err)
	}
	err := Create(path, []byte("second"), 0o600)
	if !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Create: err = %v, want fs.ErrExist", err)
	}
	got, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if string(got) != "first" || st.Mode().Perm() != 0o640 {
		t.Errorf("file holds %q mode %o, want the first write's \"first\" 0640", got, st.Mode().Perm())
	}
	onlyFile(t, dir)
}

func TestWriteMissingDir(t *testing.T) {
	if err := Write(filepath.Join(t.TempDir(), "no", "f"), nil, 0o600); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want not exist", err)
	}
}

// errFill is what a failing fill returns.
var errFill = errors.New("fill failed")

func onlyFile(t *testing.T, dir string) {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil || len(es) != 1 || es[0].Name() != "f" {
		names := []string{}
		for _, e := range es {
			names = append(names, e.Name())
		}
		t.Errorf("dir holds %v, %v; want only f", names, err)
	}
}
