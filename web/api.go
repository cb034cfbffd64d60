package web

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/deploybot/deploybot/deployer"
)

// writeJSON answers with v as indented JSON.
func (s *Server) writeJSON(w http.ResponseWriter, r *http.Request, code int, v any) {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		s.internalError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(data, '\n'))
	}
}

// apiError is the JSON shape of a refusal: a message a person can act on.
type apiError struct {
	Error string `json:"error"`
}

// DeploymentList is the answer of GET /api/deployments: one page of the
// history, newest first. Verdicts come without their raw samples here;
// /api/deployments/{id} has them.
type DeploymentList struct {
	Deployments []*deployer.Deployment `json:"deployments"`
	Offset      int                    `json:"offset"`
	Limit       int                    `json:"limit"`
	Person      string                 `json:"person,omitempty"`
	Outcome     deployer.State         `json:"outcome,omitempty"`
	// Next is the URL of the next (older) page, "" on the last one.
	Next string `json:"next,omitempty"`
}

func (s *Server) handleAPIList(w http.ResponseWriter, r *http.Request) {
	h, err := s.parseHistory(r)
	if err != nil {
		s.writeJSON(w, r, http.StatusBadRequest, apiError{deployer.ErrorMessage(err)})
		return
	}
	ds, more, err := s.history(h)
	if err != nil {
		s.log.Error("dashboard request failed", "path", r.URL.Path, "err", err)
		s.writeJSON(w, r, http.StatusInternalServerError, apiError{"internal error (the bot's log has the details)"})
		return
	}
	for _, d := range ds {
		for i := range d.Verdicts {
			d.Verdicts[i].Samples = nil
		}
	}
	out := DeploymentList{Deployments: ds, Offset: h.Offset, Limit: h.Limit, Person: h.Person, Outcome: h.Outcome}
	if more {
		out.Next = "/api/deployments" + h.link(h.Offset + h.Limit)[len("/history"):]
	}
	s.writeJSON(w, r, http.StatusOK, out)
}

func (s *Server) handleAPIDeployment(w http.ResponseWriter, r *http.Request) {
	raw := r.PathValue("id")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		s.writeJSON(w, r, http.StatusNotFound, apiError{fmt.Sprintf("%q is not a deployment number", raw)})
		return
	}
	dt, err := s.detail(r, id)
	if errors.Is(err, deployer.ErrNotFound) || deployer.ErrorCode(err) == deployer.ENotFound {
		s.writeJSON(w, r, http.StatusNotFound, apiError{fmt.Sprintf("there is no deployment #%d", id)})
		return
	}
	if err != nil {
		s.log.Error("dashboard request failed", "path", r.URL.Path, "deployment", id, "err", err)
		s.writeJSON(w, r, http.StatusInternalServerError, apiError{"internal error (the bot's log has the details)"})
		return
	}
	s.writeJSON(w, r, http.StatusOK, dt)
}

func (s *Server) handleAPIStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		s.log.Error("dashboard request failed", "path", r.URL.Path, "err", err)
		s.writeJSON(w, r, http.StatusInternalServerError, apiError{"internal error (the bot's log has the details)"})
		return
	}
	s.writeJSON(w, r, http.StatusOK, st)
}

// handleHealth answers 200 when the store can be read, 503 otherwise.
func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	if _, err := s.opt.Store.Lock(); err != nil {
		s.log.Error("health check: the store cannot be read", "err", err)
		s.writeJSON(w, r, http.StatusServiceUnavailable, map[string]string{"status": "store unreadable"})
		return
	}
	s.writeJSON(w, r, http.StatusOK, map[string]string{"status": "ok"})
}
