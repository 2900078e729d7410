"""scripts/bench/loader_torch.py DIR [runs] — the peer of loader_spore.lua: PIL decode +
torchvision RandomResizedCrop(224), RandomHorizontalFlip, ToTensor, Normalize in a
DataLoader with 2 workers (persistent), batch 32. One warm-up epoch (worker start, page
cache), then one timed epoch per run; prints "loader_jpeg_rrc224_2threads<TAB>v" per run,
then "cpu<TAB>v": images per CPU-second of the same per-image work in one process with one
torch thread (as a DataLoader worker runs it); nothing when torch/torchvision cannot be
imported."""
import glob
import sys
import time

try:
    import torch
    from PIL import Image
    from torchvision import transforms as T
except Exception as e:  # noqa: BLE001
    print("torch/torchvision unavailable: %s" % e, file=sys.stderr)
    sys.exit(0)

paths = sorted(glob.glob(sys.argv[1] + "/*.jpg"))
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 1
tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(),
                T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])


class DS(torch.utils.data.Dataset):
    def __len__(self):
        return len(paths)

    def __getitem__(self, i):
        with open(paths[i], "rb") as f:
            return tf(Image.open(f).convert("RGB")), 0


if __name__ == "__main__":
    torch.manual_seed(1)
    dl = torch.utils.data.DataLoader(DS(), batch_size=32, num_workers=2, persistent_workers=True)

    def epoch():
        n = 0
        for x, _ in dl:
            n += x.shape[0]
        return n

    epoch()
    for _ in range(runs):
        t0 = time.perf_counter()
        n = epoch()
        print("loader_jpeg_rrc224_2threads\t%.6g" % (n / (time.perf_counter() - t0)), flush=True)
    torch.set_num_threads(1)
    ds = DS()
    c0 = time.process_time()
    for i in range(len(paths)):
        ds[i]
    print("cpu\t%.6g" % (len(paths) / (time.process_time() - c0)), flush=True)
