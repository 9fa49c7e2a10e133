package api

import (
	"context"
	"net/http"

	"github.com/vordr-project/vordr/plugin"
)

// Image is an image with what vordr verified at import (the runtime
// re-verifies at every create): the same view as `vordr images --json`.
type Image = plugin.ImageState

func (s *Server) listImages(w http.ResponseWriter, r *http.Request, _ Identity) error {
	rows, err := s.imageList(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"images": rows})
	return nil
}

// imageList is containerd's images with vordr's verification records.
func (s *Server) imageList(ctx context.Context) ([]Image, error) {
	imgs, err := s.client.ImageService().List(s.ns(ctx))
	if err != nil {
		return nil, err
	}
	return plugin.ImageStates(imgs), nil
}
