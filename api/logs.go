package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/drover-dev/drover/deploy"
)

// RollbackRequest is the optional body of POST /v1/deployments/{id}/rollback.
type RollbackRequest struct {
	// To is the release to go back to (one still kept on every host);
	// empty: each host's previous release.
	To string `json:"to,omitempty"`
}

// logs serves GET /v1/deployments/{id}/logs?host=H&stage=S&after=N: the
// recorded output of remote commands (deploy.LogPage).
func (s *server) logs(w http.ResponseWriter, r *http.Request) {
	q := deploy.LogQuery{ID: r.PathValue("id"), Host: r.URL.Query().Get("host"), Stage: deploy.Stage(r.URL.Query().Get("stage"))}
	if a := r.URL.Query().Get("after"); a != "" {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil {
			writeError(w, fmt.Errorf("%w: after=%q: not a line number", ErrBadRequest, a))
			return
		}
		q.After = n
	}
	p, err := s.cfg.Deployments.Logs(q)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}
