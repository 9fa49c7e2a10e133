//go:build linux

package gate

import (
	"context"
	"fmt"
	"github.com/opencontainers/go-digest"

	containersapi "github.com/containerd/containerd/api/services/containers/v1"
	contentapi "github.com/containerd/containerd/api/services/content/v1"
	imagesapi "github.com/containerd/containerd/api/services/images/v1"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/content"
	contentproxy "github.com/containerd/containerd/v2/core/content/proxy"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// services is the part of containerd's API the gate reads: container and
// image records and the content store, over one gRPC connection. It uses
// containerd's generated API directly rather than its client package, which
// would add a millisecond or more of start-up to every shim process
// (registries, transfer, tracing), and containerd starts three per task.
type services struct {
	conn       *grpc.ClientConn
	containers containerGetter
	images     imageGetter
	content    content.Store
}

func dial(address string) (*services, error) {
	conn, err := grpc.NewClient("unix://"+address, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	return &services{
		conn:       conn,
		containers: containerGetter{containersapi.NewContainersClient(conn)},
		images:     imageGetter{imagesapi.NewImagesClient(conn)},
		content:    contentproxy.NewContentStore(contentapi.NewContentClient(conn)),
	}, nil
}

type containerGetter struct {
	c containersapi.ContainersClient
}

func (g containerGetter) Get(ctx context.Context, id string) (containers.Container, error) {
	resp, err := g.c.Get(ctx, &containersapi.GetContainerRequest{ID: id})
	if err != nil {
		return containers.Container{}, errgrpc.ToNative(err)
	}
	c := resp.GetContainer()
	return containers.Container{
		ID: c.GetID(), Labels: c.GetLabels(), Image: c.GetImage(),
		Snapshotter: c.GetSnapshotter(), SnapshotKey: c.GetSnapshotKey(),
		CreatedAt: protobuf.FromTimestamp(c.GetCreatedAt()), UpdatedAt: protobuf.FromTimestamp(c.GetUpdatedAt()),
	}, nil
}

type imageGetter struct{ c imagesapi.ImagesClient }

func (g imageGetter) Get(ctx context.Context, name string) (images.Image, error) {
	resp, err := g.c.Get(ctx, &imagesapi.GetImageRequest{Name: name})
	if err != nil {
		return images.Image{}, errgrpc.ToNative(err)
	}
	return imageFromProto(resp.GetImage()), nil
}

// ByTarget lists the image records whose target is the manifest d.
func (g imageGetter) ByTarget(ctx context.Context, d digest.Digest) ([]images.Image, error) {
	resp, err := g.c.List(ctx, &imagesapi.ListImagesRequest{Filters: []string{"target.digest==" + d.String()}})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	var out []images.Image
	for _, i := range resp.GetImages() {
		out = append(out, imageFromProto(i))
	}
	return out, nil
}

func imageFromProto(i *imagesapi.Image) images.Image {
	img := images.Image{
		Name: i.GetName(), Labels: i.GetLabels(),
		CreatedAt: protobuf.FromTimestamp(i.GetCreatedAt()), UpdatedAt: protobuf.FromTimestamp(i.GetUpdatedAt()),
	}
	if i.GetTarget() != nil {
		img.Target = oci.DescriptorFromProto(i.GetTarget())
	}
	return img
}
