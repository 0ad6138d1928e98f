//go:build tools

package tools
import (
 _ "github.com/hashicorp/raft"
 _ "github.com/hashicorp/raft-boltdb/v2"
 _ "go.etcd.io/bbolt"
 _ "github.com/spf13/cobra"
 _ "github.com/pkg/sftp"
 _ "github.com/goccy/go-yaml"
 _ "golang.org/x/crypto/ssh"
 _ "golang.org/x/crypto/ssh/knownhosts"
 _ "golang.org/x/crypto/ssh/agent"
 _ "golang.org/x/term"
)

