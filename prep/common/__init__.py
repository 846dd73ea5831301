"""What every stage uses: published weights through the torch.hub cache, MLflow, progress bars."""
