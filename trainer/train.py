"""DDP training of one classifier; reads top to bottom: train one epoch, evaluate, data, main."""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from itertools import islice

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from classifier import checkpoint, run_folder
from classifier.config import TrainConfig, parse
from classifier.data import (
    EvalStream,
    KeyedTransform,
    SampleTransform,
    ShardSet,
    Shared,
    SplitShards,
    TrainStream,
    loader,
    open_rates,
    open_shard_set,
    start_workers,
)
from classifier.models import initial_state, load_matching
from foundation import predictions, storage
from foundation.cli import stage_main
from foundation.predictions import TOP_K
from foundation.progress import progress
from foundation.runtime import Runtime, memory_format
from trainer import distill

log = logging.getLogger(__name__)

POSTFIX_EVERY = 10  # steps between progress figures (each reads the device: a host sync)
HINT_EPOCH = -1  # the training stream's seed for distill.fit_adaptation's batches
RUN_ID_WAIT_S = 10.0  # at most, once, for the tracking server to create the MLflow run


def train_one_epoch(model, objective, optimizer, data, steps: int, device, amp, epoch: int,
                    is_main: bool) -> dict:
    """`objective(model, x, y)` -> (logits, loss): trainer.distill's Supervised or FeatureHint."""
    model.train()
    totals = torch.zeros(3, device=device)  # loss sum, correct, samples
    start = time.perf_counter()
    bar = progress(total=steps, desc=f"epoch {epoch}", unit="step", disable=not is_main,
                   leave=False)
    for step, (x, y) in enumerate(islice(data, steps), 1):
        x = to_device(x, device)
        y = y.to(device, non_blocking=True)
        with amp:
            logits, loss = objective(model, x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        totals += torch.stack([loss.detach() * len(y), (logits.argmax(1) == y).sum(),
                               torch.tensor(len(y), device=device)]).float()
        bar.update(1)
        if is_main and step % POSTFIX_EVERY == 0:
            loss_sum, correct, seen = totals.tolist()
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", top1=f"{correct / seen:.3f}",
                            img_s=f"{seen * _world() / (time.perf_counter() - start):.1f}",
                            refresh=False)
    bar.close()
    dist.all_reduce(totals)
    loss, top1 = (totals[:2] / totals[2]).tolist()
    return {"train_loss": loss, "train_top1": top1,
            "images_per_s": totals[2].item() / (time.perf_counter() - start)}


def to_device(x, device):
    """An input batch (a tensor, or the distillation's (latent, image)) on the device."""
    if isinstance(x, (list, tuple)):
        return type(x)(to_device(part, device) for part in x)
    return x.to(device, non_blocking=True, memory_format=memory_format(device))


@torch.inference_mode()
def evaluate(model, criterion, data, device, amp, prefix: str, keep: bool = False
             ) -> tuple[dict, dict | None]:
    """(metrics, predictions): Top-1/Top-5 with every sample counted once over all ranks (no
    collective in the loop), every rank with rank 0's BatchNorm statistics: those the checkpoint
    holds; with `keep`, on rank 0 (None elsewhere) every sample's key, label and top-5 classes,
    all ranks' (foundation.predictions)."""
    model.eval()
    for buffer in model.buffers():  # each rank updated its own in training
        dist.broadcast(buffer, 0)
    totals = torch.zeros(4, device=device, dtype=torch.float64)  # loss, top1, top5, samples
    keys, labels, tops = [], [], []
    for x, y, key in data:
        x = x.to(device, non_blocking=True, memory_format=memory_format(device))
        y = y.to(device, non_blocking=True)
        with amp:
            logits = model(x).float()
        top = logits.topk(min(TOP_K, logits.shape[1]), dim=1).indices
        totals += torch.stack([criterion(logits, y) * len(y), (top[:, 0] == y).sum(),
                               (top == y[:, None]).any(1).sum(),
                               torch.tensor(len(y), device=device)]).double()
        if keep:
            keys += key
            labels.append(y.cpu().numpy())
            tops.append(top.cpu().numpy())
    dist.all_reduce(totals)
    n = max(totals[3].item(), 1)
    metrics = {f"{prefix}_loss": totals[0].item() / n, f"{prefix}_top1": totals[1].item() / n,
               f"{prefix}_top5": totals[2].item() / n, f"{prefix}_samples": int(totals[3].item())}
    if not keep:
        return metrics, None
    mine = (keys, labels, tops)
    every = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(mine, every, dst=0)
    if every is None:
        return metrics, None
    labels, tops = ([a for rank in every for a in rank[part]] for part in (1, 2))
    return metrics, {"key": np.array([k for rank in every for k in rank[0]], dtype=str),
                     "label": np.concatenate(labels) if labels else np.zeros(0, np.int64),
                     "top": np.concatenate(tops) if tops else np.zeros((0, TOP_K), np.int64)}


@dataclass
class Data:
    """The run's loaders, their workers forked once: training follows `epoch`, evaluation
    reads the split selected in `splits`."""

    train: DataLoader
    evaluation: DataLoader
    epoch: Shared
    splits: SplitShards

    def train_epoch(self, epoch: int) -> DataLoader:
        self.epoch.set(epoch)
        return self.train

    def split(self, name: str) -> DataLoader:
        self.splits.select(name)
        return self.evaluation


def load_data(shard_set: ShardSet, config: TrainConfig, start_epoch: int,
              per_rank_batch: int, device: torch.device) -> Data:
    rank, world = dist.get_rank(), dist.get_world_size()
    epoch = Shared(start_epoch)
    held = shard_set.train_held
    train = TrainStream(shard_set.shards("train"),
                        SampleTransform(shard_set, True, *config.input_sizes,
                                        hint=config.distill is not None,
                                        latent_flip=not config.no_latent_flip),
                        rank, world, config.seed, epoch, hold=held)
    splits = SplitShards({s: shard_set.shards(s) for s in ("validate", "test")})
    evaluation = EvalStream(splits, KeyedTransform(SampleTransform(shard_set, False,
                                                                   *config.input_sizes)),
                            rank, world)
    seed = config.seed * 1_000_003 + rank
    data = Data(loader(train, per_rank_batch, config.train_loader_workers(held, device.type),
                       seed, True, device),
                loader(evaluation, per_rank_batch, config.loader_workers, seed, True, device),
                epoch, splits)
    start_workers(data.train, data.evaluation)
    return data


def build_model(shard_set: ShardSet, config: TrainConfig, init: dict | None) -> nn.Module:
    """The domain's network, `init` (initial_state of config.init) loaded where it matches."""
    model = config.network(shard_set.num_classes, shard_set.latent_channels)
    if init is not None:
        load_matching(model, init, f"--init {config.init}")
    return model


def parameter_groups(model: nn.Module, init: dict | None, lr: float, fresh_lr: float
                     ) -> list[dict]:
    """The tensors `init` filled at `lr`, the fresh ones (all of them without init) at
    `fresh_lr` times it; the scheduler divides both alike. At 1, one group (as ever)."""
    if fresh_lr == 1.0:
        return [{"params": list(model.parameters()), "lr": lr}]
    loaded, fresh = [], []
    for name, p in model.named_parameters():
        filled = init is not None and name in init and init[name].shape == p.shape
        (loaded if filled else fresh).append(p)
    groups = [{"params": loaded, "lr": lr}, {"params": fresh, "lr": lr * fresh_lr}]
    return [g for g in groups if g["params"]]


def _world() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


@stage_main
def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = parse(argv)
    shard_set, runtime, init = check_inputs(config)  # before any process group exists
    init_process_group("nccl" if runtime.device.type == "cuda" else "gloo")
    try:
        return run(config, shard_set, runtime, init)
    finally:
        dist.destroy_process_group()


def check_inputs(config: TrainConfig) -> tuple[ShardSet, Runtime, dict | None]:
    """Every check that can fail on input, before any process group exists: the shard set,
    the runtime (the device and its precision, resolved here once) and the starting point
    (`--init imagenet` is fetched here)."""
    shard_set = (open_rates(config.shards, config.rates) if config.rates else
                 open_shard_set(config.shards, config.domain, config.set_id))
    if config.kd_weight and config.distill is None:
        raise ValueError(f"--kd-weight {config.kd_weight}: the soft targets are a teacher's; give "
                         f"--distill CHECKPOINT")
    if config.hint_steps and config.distill is None:
        raise ValueError(f"--hint-steps {config.hint_steps}: the hint is a teacher's; give "
                         f"--distill CHECKPOINT")
    if config.distill is not None:
        if not config.reader.latent:
            raise ValueError(f"--distill: only the latent domain learns from a teacher, not "
                             f"--domain {config.domain}")
        if config.rates:
            raise ValueError("--distill with --rates: a teacher is the Anchor 2 of one quality, "
                             "one classifier for every rate reads several")
        distill.teacher_stem(config.distill)  # a missing or wrong teacher fails here
    runtime = Runtime.resolve(config.device, config.precision)
    codecs = shard_set.codec_weights() if config.reader.latent else []
    return shard_set, runtime, initial_state(config.init, codecs)


def init_process_group(backend: str) -> None:
    """The default group; under torchrun, keys are scoped to the restart attempt; without
    torchrun (`cdmr-train`, no RANK in the environment), a group of one process.

    After `--max-restarts` restarts the workers, the agent's store still holds the dead
    attempt's addresses and gloo's full-mesh connect picks them up (seen with torch 2.14:
    "Connection refused" to the killed rank's old port); a per-attempt prefix avoids them.
    """
    if "RANK" not in os.environ:
        dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
        return
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        dist.init_process_group(backend)
        return
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), world,
                          is_master=False)
    attempt = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
    dist.init_process_group(backend, store=dist.PrefixStore(f"cdmr/attempt{attempt}", store),
                            rank=rank, world_size=world)


def run(config: TrainConfig, shard_set: ShardSet, runtime: Runtime, init: dict | None) -> int:
    rank, world = dist.get_rank(), dist.get_world_size()
    device = runtime.device
    is_main = rank == 0
    if config.batch_size % world:
        raise ValueError(f"--batch-size {config.batch_size} is not divisible by {world} processes")
    per_rank_batch = config.batch_size // world
    torch.manual_seed(config.seed)
    model = build_model(shard_set, config, init).to(device, memory_format=runtime.memory_format)
    ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda"
                                  else None, gradient_as_bucket_view=True)  # no grad copies
    if config.compile:  # fused kernels for the training step; the first steps compile
        ddp = torch.compile(ddp)
    amp = runtime.autocast()
    criterion = nn.CrossEntropyLoss()
    objective = distill.Supervised() if config.distill is None else objective_of(config, device)
    optimizer = torch.optim.SGD(parameter_groups(model, init, config.scaled_lr, config.fresh_lr),
                                momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, list(config.lr_steps), 0.1)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    start_epoch, history, run_id = resume(config, model, optimizer, scheduler, is_main)
    if is_main:  # a run that trains again is not complete until its new test result
        run_folder.result_file(out).unlink(missing_ok=True)
    steps = config.steps_per_epoch(shard_set.counts["train"])
    # before MLflow's threads
    data = load_data(shard_set, config, start_epoch, per_rank_batch, device)
    tracker = (Tracker(config, shard_set, world, run_id, start_epoch > 0, runtime.precision)
               if is_main else None)
    if is_main:
        print(f"{world} process(es) x {torch.get_num_threads()} thread(s) on {device}, "
              f"precision {runtime.precision} (--precision {config.precision})", flush=True)
    if start_epoch == 0 and config.hint_steps:  # a resumed run has it in its checkpoint
        error = distill.fit_adaptation(model, objective.stem, data.train_epoch(HINT_EPOCH),
                                       config.hint_steps, device, amp)
        if is_main:
            print(f"hint: {config.hint_steps} steps fitted the latent branches to the teacher's "
                  f"conv_2x, relative error {error:.3f}", flush=True)
    for epoch in range(start_epoch, config.epochs):
        metrics = train_one_epoch(ddp, objective, optimizer, data.train_epoch(epoch), steps,
                                  device, amp, epoch + 1, is_main)
        metrics["lr"] = optimizer.param_groups[0]["lr"]
        scheduler.step()
        metrics |= evaluate(model, criterion, data.split("validate"), device, amp, "val")[0]
        history.append({"epoch": epoch + 1, **metrics})
        if is_main:
            path = checkpoint.save(out, model, optimizer, scheduler, epoch, config, history,
                                   tracker.run_id, precision=runtime.precision)
            tracker.epoch(epoch + 1, metrics, path)
            print(f"epoch {epoch + 1}/{config.epochs}: loss {metrics['train_loss']:.3f}, "
                  f"train top-1 {metrics['train_top1']:.3f}, val top-1 {metrics['val_top1']:.3f} "
                  f"top-5 {metrics['val_top5']:.3f}, {metrics['images_per_s']:.1f} img/s")
        dist.barrier()
    test, predicted = evaluate(model, criterion, data.split("test"), device, amp, "test",
                               keep=True)
    if is_main:  # the report reads these instead of predicting again (evaluation.evaluate)
        predictions.write(out / predictions.RUN_FILE, predicted,
                          storage.sha256(out / checkpoint.CHECKPOINT),
                          shard_set.fingerprint("test"))
        tracker.finish(test)
        run_folder.write_result(out, test)
        print(f"test: top-1 {test['test_top1']:.4f}, top-5 {test['test_top5']:.4f} on "
              f"{test['test_samples']} samples (manifest: {shard_set.counts['test']})")
    return 0


def objective_of(config: TrainConfig, device: torch.device):
    """The loss of a run with a teacher: the conv_2x hint alone (FeatureHint, which runs the
    teacher's stem only), or with --kd-weight the teacher's class probabilities too."""
    layout = memory_format(device)
    if not config.kd_weight:
        return distill.FeatureHint(distill.teacher_stem(config.distill).to(
            device, memory_format=layout), config.distill_weight)
    return distill.Taught(distill.teacher_network(config.distill).to(device, memory_format=layout),
                          config.distill_weight, config.kd_weight, config.kd_temperature)


def resume(config: TrainConfig, model, optimizer, scheduler, is_main: bool
           ) -> tuple[int, list, str | None]:
    """(first epoch, history, MLflow run id): from the run folder's newest readable checkpoint
    with --resume or after a torchrun restart, else a fresh start. A damaged checkpoint is
    one line and the one before it is used; none readable is an error naming the files."""
    restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0)) > 0
    if not (config.resume or restarted):
        return 0, [], None
    found = checkpoint.load_latest(config.out_dir, say=print if is_main else lambda _: None)
    if found is None:
        return 0, [], None
    path, state = found
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    checkpoint.restore_rng(state["rng"])
    if path.name != checkpoint.CHECKPOINT:  # the newest is damaged: keep it out of the rotation
        dist.barrier()  # every rank has read the folder
        if is_main:
            checkpoint.set_aside(config.out_dir)
    if is_main:
        print(f"resuming {path} after epoch {state['epoch'] + 1}")
    return state["epoch"] + 1, state["history"], state["mlflow_run_id"] or None


class Tracker:
    """MLflow on rank 0, through the run folder's journal (foundation.journal): params and
    tags once, metrics per epoch, the test result at the end; a tracking server that does not
    answer never stops training."""

    def __init__(self, config: TrainConfig, shard_set: ShardSet, world: int, run_id: str | None,
                 resumed: bool, arithmetic: str):
        from foundation.journal import JOURNAL, Journal

        codec = shard_set.info.get("codec") or {}
        tags = {"domain": config.domain, "dataset": config.dataset,
                "model": config.reader.model_name,
                "quality": str(config.quality or "original"), "codec": config.codec,
                "set": config.set_id.name, "inputs": config.inputs,
                "method": config.reader.method}
        self.journal, self.waited = Journal(config.out_dir / JOURNAL), False
        if self.journal.start(config.experiment, config.run_name, tags, run_id, resumed):
            self.journal.log_params(
                {**{k: v for k, v in asdict(config).items() if v is not None},
                 "scaled_lr": config.scaled_lr, "world_size": world,
                 "precision_resolved": arithmetic,
                 "codec_weights_sha256": codec.get("weights_sha256", ""),
                 "codec_N": codec.get("N", ""), "codec_M": codec.get("M", ""),
                 "train_samples": shard_set.counts["train"]})

    @property
    def run_id(self) -> str | None:
        """The MLflow run's id once the server has answered (kept in the checkpoint, where the
        report finds the training run): asked first at the first checkpoint, it waits up to
        RUN_ID_WAIT_S once for the run to be created (an epoch of a few steps can end before
        the journal has delivered it); a server that does not answer leaves it None."""
        if self.journal.run_id is None and not self.waited:
            self.waited = True
            deadline = time.monotonic() + RUN_ID_WAIT_S
            while self.journal.run_id is None and time.monotonic() < deadline:
                time.sleep(0.05)
        return self.journal.run_id

    def epoch(self, epoch: int, metrics: dict, checkpoint_path) -> None:
        self.journal.log_metrics({k: v for k, v in metrics.items() if math.isfinite(v)},
                                 step=epoch)
        self.journal.set_tags({"checkpoint": str(checkpoint_path.resolve())})

    def finish(self, test: dict) -> None:
        self.journal.log_metrics(test)
        self.journal.finish()
