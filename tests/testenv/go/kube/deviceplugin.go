package main

// A GPU device plugin for nodes without GPUs. It speaks the kubelet's real device plugin API, so
// the kubelet itself advertises, schedules and allocates the devices: concurrent pods get
// different ids, and Allocate hands each container NVIDIA_VISIBLE_DEVICES as NVIDIA's plugin
// does. Nothing else about a GPU is simulated.

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

type devicePlugin struct {
	pluginapi.UnimplementedDevicePluginServer
	devices []*pluginapi.Device
}

func newDevicePluginCommand() *cobra.Command {
	var dir, resource, prefix string
	var count int
	cmd := &cobra.Command{
		Use:   "gpu-device-plugin",
		Short: "Advertise COUNT devices of RESOURCE to the kubelet whose device-plugins directory is DIR",
		RunE: func(*cobra.Command, []string) error {
			if count < 1 {
				return fmt.Errorf("--count %d: a node advertises at least one device", count)
			}
			p := &devicePlugin{}
			for i := 0; i < count; i++ {
				p.devices = append(p.devices, &pluginapi.Device{ID: fmt.Sprintf("%s-%d", prefix, i), Health: pluginapi.Healthy})
			}
			return p.serve(dir, resource)
		},
	}
	cmd.Flags().StringVar(&dir, "device-plugin-path", pluginapi.DevicePluginPath, "the kubelet's device-plugins directory")
	cmd.Flags().StringVar(&resource, "resource", "nvidia.com/gpu", "the extended resource name")
	cmd.Flags().StringVar(&prefix, "id-prefix", "GPU", "device ids are PREFIX-0, PREFIX-1, ...")
	cmd.Flags().IntVar(&count, "count", 2, "how many devices the node has")
	return cmd
}

// serve registers with the kubelet and registers again whenever the kubelet restarts: a
// restarting kubelet wipes its device-plugins directory, socket included.
func (p *devicePlugin) serve(dir, resource string) error {
	endpoint := strings.ReplaceAll(resource, "/", "-") + ".sock"
	socket := filepath.Join(dir, endpoint)
	kubeletSocket := filepath.Join(dir, "kubelet.sock")
	for {
		// The kubelet creates the directory and its socket when it starts (and again after a
		// restart): wait for it rather than fail.
		for {
			if _, err := os.Stat(kubeletSocket); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		_ = os.Remove(socket)
		listener, err := net.Listen("unix", socket)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", socket, err)
		}
		server := grpc.NewServer()
		pluginapi.RegisterDevicePluginServer(server, p)
		go func() { _ = server.Serve(listener) }()
		for {
			if err := register(kubeletSocket, endpoint, resource); err != nil {
				fmt.Fprintf(os.Stderr, "gpu-device-plugin: register %s: %v (retrying)\n", resource, err)
				time.Sleep(time.Second)
				continue
			}
			fmt.Fprintf(os.Stderr, "gpu-device-plugin: registered %s with %d devices\n", resource, len(p.devices))
			break
		}
		for {
			time.Sleep(time.Second)
			if _, err := os.Stat(socket); err != nil {
				break
			}
		}
		server.Stop()
	}
}

func register(kubeletSocket, endpoint, resource string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+kubeletSocket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = pluginapi.NewRegistrationClient(conn).Register(ctx, &pluginapi.RegisterRequest{
		Version:      pluginapi.Version,
		Endpoint:     endpoint,
		ResourceName: resource,
	})
	return err
}

func (p *devicePlugin) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends the devices once and then holds the stream open: they never change.
func (p *devicePlugin) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	if err := stream.Send(&pluginapi.ListAndWatchResponse{Devices: p.devices}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

func (p *devicePlugin) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	for _, c := range req.ContainerRequests {
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{"NVIDIA_VISIBLE_DEVICES": strings.Join(c.DevicesIds, ",")},
		})
	}
	return resp, nil
}

func (p *devicePlugin) GetPreferredAllocation(context.Context, *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	return &pluginapi.PreferredAllocationResponse{}, nil
}

func (p *devicePlugin) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
