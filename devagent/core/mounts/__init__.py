"""What an environment mounts: its home volume and the writable places of its read-only root (home.py), and which
folders may never be its workspace (system_folders.py)."""
