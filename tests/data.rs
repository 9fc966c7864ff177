//! Datasets end to end: the real dSprites files in the reference data folder, the calibrated renderer, corrupt
//! fixtures,
//! sampling and batching.
use dydis_core::data::{self, dsprites, BatchIter, DSpritesGrid, DSpritesRenderer, FactorSampler, GroundTruth};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::Device;

/// A file of the reference data folder (`$DYDIS_REFERENCE_DATA`, which `cargo` in this checkout sets).
fn shared(rel: &str) -> PathBuf {
    let dir =
        dydis_core::paths::reference_data_dir().expect("DYDIS_REFERENCE_DATA is set (the tests read real images)");
    let p = dir.join(rel);
    assert!(p.exists(), "{} is missing: the tests read the real reference data", p.display());
    p
}

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dydis-data-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn the_real_subgrid_loads_as_a_grid_dataset() {
    let real = DSpritesGrid::open(shared("dsprites/dsprites_downsampled.npz")).unwrap();
    assert_eq!(real.len(), 46_080);
    assert_eq!(real.factors().sizes(), vec![3, 6, 10, 16, 16]);
    assert_eq!(real.factors().names(), vec!["shape", "scale", "orientation", "posX", "posY"]);
    // Factor values agree with the documented grid (every 4th orientation, every 2nd position).
    let expected = dsprites::subgrid_factors();
    for (a, b) in real.factors().factors().iter().zip(expected.factors()) {
        for (x, y) in a.values.iter().zip(&b.values) {
            assert!((x - y).abs() < 1e-6, "{}: {x} vs {y}", a.name);
        }
    }
    let img = data::image(&real, 12_936).unwrap();
    assert_eq!(img.size(), vec![1, 64, 64]);
    // A 19x19 square at scale 1 in the middle (measured in docs/datasets.md): 361 pixels on.
    assert_eq!(img.gt(0.0).sum(tch::Kind::Int64).int64_value(&[]), 361);
}

#[test]
fn the_renderer_matches_the_real_images() {
    let real = DSpritesGrid::open(shared("dsprites/dsprites_downsampled.npz")).unwrap();
    let report = dsprites::compare_with_real(&real).unwrap();
    eprintln!("{report:?}");
    assert_eq!(report.images, 46_080);
    assert!(report.mean >= 0.99, "mean IoU {}", report.mean);
    for (name, n, mean, _) in &report.per_shape {
        assert_eq!(*n, 15_360);
        assert!(*mean >= 0.98, "{name}: mean IoU {mean}");
    }
}

#[test]
fn the_random_subset_is_refused_as_a_grid_with_a_clear_message() {
    let e = DSpritesGrid::open(shared("dsprites/dsprites_subset.npz")).err().unwrap().to_string();
    assert!(e.contains("dsprites_subset.npz") && e.contains("grid"), "{e}");
}

#[test]
fn corrupt_and_foreign_files_are_clear_errors() {
    let src = std::fs::read(shared("dsprites/dsprites_downsampled.npz")).unwrap();
    let cut = tmp("truncated.npz");
    std::fs::write(&cut, &src[..src.len() / 2]).unwrap();
    let e = DSpritesGrid::open(&cut).err().unwrap().to_string();
    assert!(e.contains("truncated.npz"), "{e}");

    // Right keys, wrong content: images holding 255, and labels with a missing class.
    use ndarray::{Array2, Array3};
    let write = |name: &str, imgs: Array3<u8>, classes: Array2<i64>| {
        let p = tmp(name);
        let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&p).unwrap());
        let values = classes.mapv(|c| c as f64);
        w.add_array("imgs", &imgs).unwrap();
        w.add_array("latents_classes", &classes).unwrap();
        w.add_array("latents_values", &values).unwrap();
        w.finish().unwrap();
        p
    };
    let classes = Array2::from_shape_fn((2, 5), |(r, c)| if c == 4 { r as i64 } else { 0 });
    let p = write("bright.npz", Array3::from_elem((2, 64, 64), 255u8), classes.clone());
    assert!(DSpritesGrid::open(&p).err().unwrap().to_string().contains("value 255"));
    let p = write("small.npz", Array3::zeros((2, 32, 32)), classes.clone());
    assert!(DSpritesGrid::open(&p).err().unwrap().to_string().contains("expected (N, 64, 64)"));
    let gap = Array2::from_shape_fn((2, 5), |(r, c)| if c == 4 { 2 * r as i64 } else { 0 });
    let p = write("gap.npz", Array3::zeros((2, 64, 64)), gap);
    assert!(DSpritesGrid::open(&p).err().unwrap().to_string().contains("class 1 never occurs"));
    let ok = DSpritesGrid::open(write("tiny.npz", Array3::zeros((2, 64, 64)), classes)).unwrap();
    assert_eq!(ok.len(), 2);
}

#[test]
fn epochs_cover_every_image_once_and_are_seeded() {
    let ds = DSpritesRenderer::subgrid();
    let shared: Arc<dyn GroundTruth> = Arc::new(ds.clone());
    let indices: Vec<usize> = (0..1000).collect();
    let run = |seed| {
        BatchIter::over(shared.clone(), indices.clone(), 64, Some(seed), Device::Cpu)
            .unwrap()
            .flat_map(|b| b.unwrap().indices)
            .collect::<Vec<_>>()
    };
    let a = run(1);
    assert_eq!(a, run(1));
    assert_ne!(a, run(2));
    let mut sorted = a.clone();
    sorted.sort();
    assert_eq!(sorted, indices);
    let it = BatchIter::over(shared.clone(), indices.clone(), 64, Some(1), Device::Cpu).unwrap();
    assert_eq!(it.num_batches(), 16);
    let b = it.last().unwrap().unwrap();
    assert_eq!(b.images.size(), vec![40, 1, 64, 64]);
    assert_eq!(b.classes.size(), vec![40, 5]);
    // Classes agree with the indices, and parallel decoding equals one-by-one decoding.
    let one = data::image(&ds, b.indices[3]).unwrap();
    assert!(one.equal(&b.images.get(3)));
    assert_eq!(ds.factors().classes_of(b.indices[3]).unwrap()[4] as i64, b.classes.int64_value(&[3, 4]));
    assert!(BatchIter::over(shared.clone(), vec![46_080], 8, None, Device::Cpu).is_err());
    assert!(BatchIter::epoch(shared, 0, 0, Device::Cpu).is_err());
}

#[test]
fn fixed_factor_batches_keep_their_factor() {
    let ds = DSpritesRenderer::full();
    let mut s = FactorSampler::new(5);
    let idx = s.fixed_factor_indices(ds.factors(), 2, 17, 64).unwrap();
    assert!(idx.iter().all(|&i| ds.factors().classes_of(i).unwrap()[2] == 17));
    let others: std::collections::HashSet<usize> =
        idx.iter().map(|&i| ds.factors().classes_of(i).unwrap()[3]).collect();
    assert!(others.len() > 10, "the other factors must vary");
    assert!(s.fixed_factor_indices(ds.factors(), 5, 0, 4).is_err());
    assert!(s.fixed_factor_indices(ds.factors(), 0, 3, 4).is_err());
    assert_eq!(
        FactorSampler::new(9).uniform_indices(ds.factors(), 5),
        FactorSampler::new(9).uniform_indices(ds.factors(), 5)
    );
}

#[test]
fn rendered_sets_round_trip_through_the_real_file_format() {
    let ds = DSpritesRenderer::subgrid();
    let path = tmp("rendered-subgrid.npz");
    dsprites::save_npz(&ds, &path).unwrap();
    let back = DSpritesGrid::open(&path).unwrap();
    assert_eq!(back.factors().sizes(), ds.factors().sizes());
    for i in [0, 1, 777, 23_456, 46_079] {
        assert!(data::image(&back, i).unwrap().equal(&data::image(&ds, i).unwrap()), "image {i}");
    }
    let r = dsprites::compare_with_real(&back).unwrap();
    assert_eq!(r.mean, 1.0, "a rendered file must score exactly 1 against its own renderer");
    // No temporary file is left next to the output.
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("rendered-subgrid.npz.tmp"))
        .collect();
    assert!(leftovers.is_empty());
    // A write into an impossible place fails cleanly and names it.
    let e = dsprites::save_npz(&ds, Path::new("/proc/no/such/dir/x.npz")).unwrap_err().to_string();
    assert!(e.contains("/proc/no/such/dir/x.npz"), "{e}");
}

#[test]
fn the_shapes3d_renderer_is_close_to_the_real_images() {
    use dydis_core::data::shapes3d::{compare_with_reference, Reference, SceneParams};
    let reference = Reference::open(shared("shapes3d/shapes3d_reference_samples.npz")).unwrap();
    assert_eq!(reference.images.len(), 50);
    let p = SceneParams::default();
    let r = compare_with_reference(&p, &reference);
    eprintln!("shapes3d-like vs real: mean abs error {:.3}, close pixels {:.3}", r.mean_abs_error, r.close_pixels);
    assert!(r.mean_abs_error < 12.5, "mean abs error {}", r.mean_abs_error);
    assert!(r.close_pixels > 0.6);
    // The unverified sign convention, settled by measurement: azimuth = -orientation label.
    let mut flipped = p.clone();
    flipped.azimuth_sign = -p.azimuth_sign;
    assert!(compare_with_reference(&flipped, &reference).mean_abs_error > r.mean_abs_error + 2.0);
}

/// MPI3D-toy in its real layout (an uncompressed npz with `images` N x 64 x 64 x 3), on a small fixture grid.
#[test]
fn mpi3d_npz_is_memory_mapped_and_checked() {
    use dydis_core::data::{mpi3d, Factor, FactorSpace, Mpi3dToy};
    use ndarray::Array4;
    let factors =
        FactorSpace::new(vec![Factor::categorical("object_color", 2), Factor::categorical("horizontal_axis", 3)])
            .unwrap();
    // Image i is filled with the value i*10 + channel, so every pixel says which image and channel it is.
    let imgs = Array4::from_shape_fn((6, 64, 64, 3), |(i, _, _, c)| (i * 10 + c) as u8);
    let write = |name: &str, compressed: bool, arr: &Array4<u8>| {
        let p = tmp(name);
        let f = std::fs::File::create(&p).unwrap();
        let mut w = if compressed { ndarray_npy::NpzWriter::new_compressed(f) } else { ndarray_npy::NpzWriter::new(f) };
        w.add_array("images", arr).unwrap();
        w.finish().unwrap();
        p
    };
    let path = write("mpi3d_fixture.npz", false, &imgs);
    let ds = Mpi3dToy::open_with_factors(&path, factors.clone()).unwrap();
    assert_eq!(ds.len(), 6);
    let b = data::batch(&ds, &[4, 1], Device::Cpu).unwrap();
    assert_eq!(b.size(), vec![2, 3, 64, 64]);
    // Image 4, channel 2 -> byte 42 -> 42/127.5 - 1.
    assert!((b.double_value(&[0, 2, 10, 10]) - (42.0 / 127.5 - 1.0)).abs() < 1e-6);
    assert!((b.double_value(&[1, 0, 63, 0]) - (10.0 / 127.5 - 1.0)).abs() < 1e-6);
    // Wrong count for the real release, compressed archive, mismatched grid, truncated file: clear errors.
    let e = Mpi3dToy::open(&path).err().unwrap().to_string();
    assert!(e.contains("6 images") && e.contains("1,036,800"), "{e}");
    let e = Mpi3dToy::open_with_factors(write("mpi3d_z.npz", true, &imgs), factors.clone()).err().unwrap().to_string();
    assert!(e.contains("compressed") && e.contains("np.savez"), "{e}");
    let other = FactorSpace::new(vec![Factor::categorical("a", 5)]).unwrap();
    assert!(Mpi3dToy::open_with_factors(&path, other).err().unwrap().to_string().contains("combinations"));
    let bytes = std::fs::read(&path).unwrap();
    let cut = tmp("mpi3d_cut.npz");
    std::fs::write(&cut, &bytes[..bytes.len() - 5000]).unwrap();
    assert!(Mpi3dToy::open_with_factors(&cut, factors).is_err());
    // The release grids.
    assert_eq!(mpi3d::factors_for(1_036_800).unwrap().sizes(), vec![6, 6, 2, 3, 3, 40, 40]);
    assert_eq!(mpi3d::factors_for(460_800).unwrap().sizes(), vec![4, 4, 2, 3, 3, 40, 40]);
    // data::open recognises an npz with `images` as MPI3D.
    assert!(data::open(path.to_str().unwrap()).err().unwrap().to_string().contains("1,036,800"));
}

/// A synthetic CelebA folder in the real layout (CelebA itself may not be redistributed).
fn synthetic_celeba(tag: &str, n: usize) -> PathBuf {
    let root = tmp(&format!("celeba-{tag}"));
    let imgs = root.join("img_align_celeba");
    std::fs::create_dir_all(&imgs).unwrap();
    let names: Vec<String> = (0..40).map(|a| format!("Attr_{a}")).collect();
    let mut list = format!("{n}\n{} \n", names.join(" "));
    for i in 0..n {
        let file = format!("{:06}.jpg", i + 1);
        // Left half dark, right half bright; the D2C crop (x 25..153) keeps both.
        let img = image::RgbImage::from_fn(178, 218, |x, _| {
            if x < 89 {
                image::Rgb([20, 20, 20])
            } else {
                image::Rgb([230, 230, 230])
            }
        });
        img.save(imgs.join(&file)).unwrap();
        let vals: Vec<&str> = (0..40).map(|a| if (a + i) % 3 == 0 { " 1" } else { "-1" }).collect();
        list.push_str(&format!("{file} {}\n", vals.join(" ")));
    }
    std::fs::write(root.join("list_attr_celeba.txt"), list).unwrap();
    root
}

#[test]
fn celeba_folders_load_with_0_1_attributes_and_the_d2c_crop() {
    use dydis_core::data::CelebA;
    let root = synthetic_celeba("ok", 4);
    let ds = CelebA::open(&root, 64).unwrap();
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.attribute_names().len(), 40);
    assert_eq!(ds.attributes(1)[2], 1, "(2 + 1) % 3 == 0 -> 1");
    assert_eq!(ds.attributes(1)[0], 0, "-1 becomes 0");
    let a = ds.attribute_tensor(&[0, 3]).unwrap();
    assert_eq!(a.size(), vec![2, 40]);
    let b = ds.batch(&[0, 2], Device::Cpu).unwrap();
    assert_eq!(b.size(), vec![2, 3, 64, 64]);
    // After the crop at x = 25, the dark/bright edge (x = 89) sits at 64 of 128, i.e. 32 of 64.
    assert!(b.double_value(&[0, 0, 32, 10]) < -0.7 && b.double_value(&[0, 1, 32, 54]) > 0.7);
    assert!(ds.batch(&[4], Device::Cpu).is_err());
}

#[test]
fn celeba_displays_its_attributes_and_with_without_grids() {
    use dydis_core::data::celeba::{write_synthetic, SYNTHETIC_ATTRIBUTES};
    use dydis_core::data::CelebA;
    use dydis_core::display::Show;
    let root = write_synthetic(tmp("celeba-view"), 24, 3).unwrap();
    let ds = CelebA::open(&root, 32).unwrap();
    assert_eq!(ds.len(), 24);
    // Written in parallel, yet the same seed gives the same folder.
    let again = write_synthetic(tmp("celeba-view-again"), 24, 3).unwrap();
    let list = |r: &Path| std::fs::read_to_string(r.join("list_attr_celeba.txt")).unwrap();
    assert_eq!(list(&root), list(&again));
    for i in 1..=24 {
        let f = format!("{i:06}.jpg");
        let img = |r: &Path| std::fs::read(r.join("img_align_celeba").join(&f)).unwrap();
        assert_eq!(img(&root), img(&again), "{f}");
    }
    // An existing folder is never written into; an empty request is refused.
    let e = write_synthetic(&root, 3, 0).unwrap_err().to_string();
    assert!(e.contains("already exists") && e.contains("celeba-view"), "{e}");
    assert!(write_synthetic(tmp("celeba-none"), 0, 0).unwrap_err().to_string().contains("at least one image"));
    assert!(!tmp("celeba-none").exists());
    assert_eq!(ds.attribute_names(), SYNTHETIC_ATTRIBUTES.map(String::from).as_slice());
    // The table counts what the list says.
    let t = ds.attribute_table().to_text();
    for (a, name) in SYNTHETIC_ATTRIBUTES.iter().enumerate() {
        let n = (0..ds.len()).filter(|&i| ds.attributes(i)[a] == 1).count();
        assert!(
            t.lines().any(|l| l.contains(name) && l.split_whitespace().nth(2) == Some(n.to_string().as_str())),
            "{name}: {n}\n{t}"
        );
    }
    // Images: the scene sits in the crop window, so the 32 px images are not the grey frame.
    let b = ds.batch(&[0], tch::Device::Cpu).unwrap();
    assert!(b.std(true).double_value(&[]) > 0.05);
    // Attribute grid: two rows of n (with it / without it), and clear errors.
    let a = SYNTHETIC_ATTRIBUTES
        .iter()
        .find(|n| {
            (0..ds.len()).any(|i| ds.attributes(i)[ds.attribute_names().iter().position(|x| x == *n).unwrap()] == 1)
                && (0..ds.len())
                    .any(|i| ds.attributes(i)[ds.attribute_names().iter().position(|x| x == *n).unwrap()] == 0)
        })
        .unwrap();
    let g = ds.attribute_grid(a, 4, 0, 1).unwrap();
    assert_eq!((g.width, g.height), (4 * 32 + 5 * 2, 2 * 32 + 3 * 2));
    assert!(g.caption.clone().unwrap_or_default().starts_with(a));
    assert!(ds.attribute_grid("Smiling", 4, 0, 1).unwrap_err().to_string().contains("'Smiling' is not one of"));
    let v = ds.view().unwrap();
    assert!(v.to_html().contains("<img") && v.to_html().contains("Large_Object"));
    assert_eq!(ds.sample_grid(8, 1, 1).unwrap().width, 8 * 32 + 9 * 2);
}

#[test]
fn broken_celeba_files_are_clear_errors() {
    use dydis_core::data::CelebA;
    let root = synthetic_celeba("bad", 3);
    let list = root.join("list_attr_celeba.txt");
    let good = std::fs::read_to_string(&list).unwrap();
    std::fs::write(
        &list,
        good.replacen("000002.jpg -1", "000002.jpg  2", 1).replacen("000002.jpg  1", "000002.jpg  2", 1),
    )
    .unwrap();
    let e = CelebA::open(&root, 64).err().unwrap().to_string();
    assert!(e.contains("line 4") && e.contains("'2' is not -1 or 1"), "{e}");
    std::fs::write(&list, good.replacen("3\n", "5\n", 1)).unwrap();
    assert!(CelebA::open(&root, 64).err().unwrap().to_string().contains("announces 5 images but lists 3"));
    std::fs::write(&list, &good).unwrap();
    std::fs::write(root.join("img_align_celeba/000003.jpg"), b"not a jpeg").unwrap();
    image::RgbImage::new(100, 100).save(root.join("img_align_celeba/000002.jpg")).unwrap();
    let ds = CelebA::open(&root, 64).unwrap();
    let e = ds.batch(&[2], Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("000003.jpg") && e.contains("unreadable image"), "{e}");
    let e = ds.batch(&[1], Device::Cpu).unwrap_err().to_string();
    assert!(e.contains("100x100") && e.contains("178x218"), "{e}");
    assert!(CelebA::open(root.join("nowhere"), 64).is_err());
    assert!(CelebA::open(&root, 4).is_err());
}

#[test]
fn cars3d_mat_files_load_in_list_order_with_the_documented_index() {
    use dydis_core::data::{cars3d, Cars3D};
    let dir = tmp("cars");
    std::fs::create_dir_all(&dir).unwrap();
    let (s, az, el) = (128usize, 24usize, 4usize);
    // Object k: every pixel of view (a, e) in channel c holds 40k + 10c + ... small codes; we check a few.
    for (k, name) in ["car_002_mesh", "car_001_mesh"].iter().enumerate() {
        let mut data = vec![0u8; s * s * 3 * az * el];
        for e in 0..el {
            for a in 0..az {
                for c in 0..3 {
                    let v = (100 * k + 20 * e + a + 3 * c) as u8;
                    let start = s * s * (c + 3 * (a + az * e));
                    data[start..start + s * s].fill(v);
                }
            }
        }
        cars3d::save_mat(&dir.join(format!("{name}.mat")), &data).unwrap();
    }
    std::fs::write(dir.join("list.txt"), "car_002_mesh\ncar_001_mesh\n").unwrap();
    let ds = Cars3D::open(&dir).unwrap();
    assert_eq!(ds.factors().sizes(), vec![4, 24, 2]);
    // index = elevation*(24*N) + azimuth*N + object; object 0 is car_002 (list order).
    let idx = 3 * 48 + 5 * 2 + 1;
    let img = data::image(&ds, idx).unwrap();
    let expect = |c: usize| ((100 + 20 * 3 + 5 + 3 * c) as f64) / 127.5 - 1.0;
    for c in 0..3 {
        assert!((img.double_value(&[c as i64, 32, 32]) - expect(c)).abs() < 1e-3, "channel {c}");
    }
    // Broken inputs name the file.
    cars3d::write_mat_u8(&dir.join("car_001_mesh.mat"), "im", &[64, 64, 3, 24, 4], &vec![0u8; 64 * 64 * 3 * 96])
        .unwrap();
    let e = Cars3D::open(&dir).err().unwrap().to_string();
    assert!(e.contains("car_001_mesh.mat") && e.contains("expected [128, 128, 3, 24, 4]"), "{e}");
    std::fs::write(dir.join("car_001_mesh.mat"), b"garbage").unwrap();
    assert!(Cars3D::open(&dir).err().unwrap().to_string().contains("car_001_mesh.mat"));
    std::fs::remove_file(dir.join("car_001_mesh.mat")).unwrap();
    assert!(Cars3D::open(&dir).is_err(), "a listed object without its file");
    // The writer refuses anything but one object's (128, 128, 3, 24, 4) bytes.
    let e = cars3d::save_mat(&dir.join("x.mat"), &[0u8; 10]).unwrap_err().to_string();
    assert!(e.contains("x.mat") && e.contains("10 bytes") && e.contains("[128, 128, 3, 24, 4]"), "{e}");
    assert!(!dir.join("x.mat").exists());

    // Rows and columns are not swapped anywhere between writer, file and reader: left half dark, right half bright
    // (MATLAB's second index is the column).
    let lr = tmp("cars-lr");
    std::fs::create_dir_all(&lr).unwrap();
    let n = s * s * 3 * az * el;
    let data: Vec<u8> = (0..n).map(|i| if (i / s) % s < s / 2 { 10 } else { 200 }).collect();
    cars3d::save_mat(&lr.join("car_001_mesh.mat"), &data).unwrap();
    let ds = Cars3D::open(&lr).unwrap();
    let img = data::image(&ds, 0).unwrap();
    let px = |y: i64, x: i64| (img.double_value(&[1, y, x]) + 1.0) * 127.5;
    for y in [5, 32, 58] {
        assert!(
            (px(y, 8) - 10.0).abs() < 2.0 && (px(y, 56) - 200.0).abs() < 2.0,
            "row {y}: {} {}",
            px(y, 8),
            px(y, 56)
        );
    }
}

/// A Cars3D folder with synthetic content: seeded, in the real layout, and the views really change with azimuth
/// and elevation.
#[test]
fn synthetic_cars3d_folders_are_seeded_and_load() {
    use dydis_core::data::{cars3d, Cars3D};
    let a = cars3d::write_synthetic(tmp("cars-synth-a"), 2, 5).unwrap();
    let b = cars3d::write_synthetic(tmp("cars-synth-b"), 2, 5).unwrap();
    assert!(cars3d::write_synthetic(&a, 1, 0).unwrap_err().to_string().contains("already exists"));
    assert!(cars3d::write_synthetic(tmp("cars-none"), 0, 0).unwrap_err().to_string().contains("at least one object"));
    let leftovers: Vec<_> = std::fs::read_dir(a.parent().unwrap())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("cars-synth-a.tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    for f in ["car_001_mesh.mat", "car_002_mesh.mat", "list.txt"] {
        assert_eq!(std::fs::read(a.join(f)).unwrap(), std::fs::read(b.join(f)).unwrap(), "{f}");
    }
    let ds = Cars3D::open(&a).unwrap();
    assert_eq!(ds.factors().sizes(), vec![4, 24, 2]);
    let img = |e: usize, az: usize, o: usize| data::image(&ds, ds.factors().index_of(&[e, az, o]).unwrap()).unwrap();
    let differ = |x: &tch::Tensor, y: &tch::Tensor| (x - y).abs().mean(tch::Kind::Float).double_value(&[]);
    assert!(differ(&img(0, 0, 0), &img(0, 6, 0)) > 0.01, "azimuth");
    assert!(differ(&img(0, 0, 0), &img(3, 0, 0)) > 0.01, "elevation");
    assert!(differ(&img(0, 0, 0), &img(0, 0, 1)) > 0.01, "object");
}

/// Any RGB grid exported in MPI3D's layout (uncompressed `images`, plus the stored grid) opens again through the
/// memory-mapped reader with the same factors and pixels; a grid that does not add up is a clear error.
#[test]
fn rgb_grids_round_trip_through_the_mpi3d_layout() {
    use dydis_core::data::{mpi3d, Mpi3dToy, Shapes3DRenderer};
    let ds = Shapes3DRenderer::subsampled([2, 2, 1, 2, 2, 3], 32).unwrap();
    let dir = tmp("mpi3d-export");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("grid.npz");
    mpi3d::save_npz(&ds, &path).unwrap();
    let back = Mpi3dToy::open(&path).unwrap();
    assert_eq!(back.factors().names(), ds.factors().names());
    for (x, y) in back.factors().factors().iter().zip(ds.factors().factors()) {
        assert_eq!(x.values, y.values, "{}", x.name);
    }
    assert!(back.name().starts_with("npz images"), "{}", back.name());
    let idx: Vec<usize> = (0..ds.len()).collect();
    assert!(data::batch(&back, &idx, Device::Cpu).unwrap().allclose(
        &data::batch(&ds, &idx, Device::Cpu).unwrap(),
        0.0,
        1e-5,
        false
    ));
    assert!(data::open(path.to_str().unwrap()).is_ok());
    let names: Vec<String> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, vec!["grid.npz".to_string()], "no temporary file is left");
    // Binary sprites are not RGB.
    let e =
        mpi3d::save_npz(&dydis_core::data::DSpritesRenderer::subgrid(), &dir.join("s.npz")).unwrap_err().to_string();
    assert!(e.contains("1 channels"), "{e}");
    // A stored grid whose sizes and values disagree.
    let bad = dir.join("bad-grid.npz");
    let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&bad).unwrap());
    w.add_array("images", &ndarray::Array4::<u8>::zeros((4, 8, 8, 3))).unwrap();
    w.add_array("factor_sizes", &ndarray::arr1(&[2i64, 2])).unwrap();
    w.add_array("factor_values", &ndarray::arr1(&[0.0, 1.0, 0.0])).unwrap();
    w.add_array("factor_names", &ndarray::arr1(b"a,b")).unwrap();
    w.finish().unwrap();
    let e = Mpi3dToy::open(&bad).err().unwrap().to_string();
    assert!(e.contains("bad-grid.npz") && e.contains("inconsistent stored grid"), "{e}");
    // Sizes that overflow when added, and a grid whose names repeat: errors naming the file, never a panic.
    let write_grid = |name: &str, sizes: &[i64], values: &[f64], names: &[u8]| {
        let p = dir.join(name);
        let mut w = ndarray_npy::NpzWriter::new(std::fs::File::create(&p).unwrap());
        w.add_array("images", &ndarray::Array4::<u8>::zeros((4, 8, 8, 3))).unwrap();
        w.add_array("factor_sizes", &ndarray::arr1(sizes)).unwrap();
        w.add_array("factor_values", &ndarray::arr1(values)).unwrap();
        w.add_array("factor_names", &ndarray::arr1(names)).unwrap();
        w.finish().unwrap();
        Mpi3dToy::open(&p).err().unwrap().to_string()
    };
    let e = write_grid("overflow.npz", &[i64::MAX, i64::MAX, 3], &[0.0; 1], b"a,b,c");
    assert!(e.contains("overflow.npz") && e.contains("inconsistent stored grid"), "{e}");
    let e = write_grid("negative.npz", &[-2, 6], &[0.0; 4], b"a,b");
    assert!(e.contains("inconsistent stored grid"), "{e}");
    let e = write_grid("repeated.npz", &[2, 2], &[0.0, 1.0, 0.0, 1.0], b"a,a");
    assert!(e.contains("repeated.npz") && e.contains("stored grid is not valid"), "{e}");
}

/// `fetch` against a server on the loopback interface (tests never reach outside this machine): a verified
/// download lands under its name; a checksum mismatch or an unreachable server leaves nothing behind.
#[test]
fn fetch_verifies_and_never_keeps_a_bad_download() {
    use dydis_core::data::fetch::{self, Source};
    use std::io::{Read, Write};
    let body: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = body.clone();
    let server = std::thread::spawn(move || {
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let _ = s.read(&mut req);
            let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", served.len());
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&served).unwrap();
        }
    });
    let (sha, md5) = {
        let p = tmp("body.bin");
        std::fs::write(&p, &body).unwrap();
        fetch::digests(&p).unwrap()
    };
    let dir = tmp("fetched");
    let good = Source {
        name: "fixture",
        url: format!("http://127.0.0.1:{port}/fixture.bin"),
        file: "fixture.bin",
        size: Some(body.len() as u64),
        sha256: Some(Box::leak(sha.into_boxed_str())),
        md5: Some(Box::leak(md5.into_boxed_str())),
        then: "",
    };
    let path = fetch::fetch(&good, &dir).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), body);
    let bad = Source { file: "bad.bin", sha256: Some("00"), ..good.clone() };
    let e = fetch::fetch(&bad, &dir).unwrap_err().to_string();
    assert!(e.contains("failed verification") && e.contains("sha256"), "{e}");
    assert!(!dir.join("bad.bin").exists() && !dir.join("bad.bin.part").exists());
    server.join().unwrap();
    // Nothing listens on this port any more: a clear error that says how to get the file by hand.
    let gone = Source { file: "gone.bin", ..good.clone() };
    let e = fetch::fetch(&gone, &dir).unwrap_err().to_string();
    assert!(e.contains("could not download") && e.contains("by hand"), "{e}");
    assert!(!dir.join("gone.bin").exists());
    // A verified copy is reused without a download.
    assert_eq!(fetch::fetch(&good, &dir).unwrap(), path);
    assert!(fetch::sources()
        .iter()
        .all(|s| s.url.starts_with("http") && (s.sha256.is_some() || s.md5.is_some() || s.name == "dsprites")));
}

/// The 3dshapes.h5 layout: the look-alike exported as .h5 reads back through the real-file reader unchanged;
/// labels outside the official value sets and broken files are clear errors.
#[test]
fn shapes3d_h5_round_trip_and_bad_files() {
    use dydis_core::data::{shapes3d_h5, Shapes3DRenderer, Shapes3dH5};
    let ds = Shapes3DRenderer::subsampled([2, 2, 1, 2, 2, 3], 32).unwrap();
    let path = tmp("shapes3d_small.h5");
    shapes3d_h5::save_h5(&ds, &path).unwrap();
    let back = Shapes3dH5::open(&path).unwrap();
    assert_eq!(back.factors().sizes(), ds.factors().sizes());
    for (a, b) in back.factors().factors().iter().zip(ds.factors().factors()) {
        assert_eq!(a.values, b.values, "{}", a.name);
    }
    let idx: Vec<usize> = (0..ds.len()).collect();
    assert!(data::batch(&back, &idx, Device::Cpu).unwrap().allclose(
        &data::batch(&ds, &idx, Device::Cpu).unwrap(),
        0.0,
        1e-5,
        false
    ));
    assert!(data::open(path.to_str().unwrap()).is_ok());

    // Labels outside the official sets.
    let f = hdf5_metno::File::create(tmp("bad_labels.h5")).unwrap();
    f.new_dataset_builder().with_data(&ndarray::Array4::<u8>::zeros((1, 8, 8, 3))).create("images").unwrap();
    f.new_dataset_builder().with_data(&ndarray::arr2(&[[0.0, 0.0, 0.0, 0.5, 0.0, 0.0]])).create("labels").unwrap();
    drop(f);
    let e = Shapes3dH5::open(tmp("bad_labels.h5")).err().unwrap().to_string();
    assert!(e.contains("row 0: scale = 0.5 is not one of the official values"), "{e}");
    // Missing dataset, not HDF5 at all, missing file.
    let f = hdf5_metno::File::create(tmp("no_images.h5")).unwrap();
    f.new_dataset_builder().with_data(&ndarray::arr2(&[[0.0; 6]])).create("labels").unwrap();
    drop(f);
    assert!(Shapes3dH5::open(tmp("no_images.h5")).err().unwrap().to_string().contains("missing dataset 'images'"));
    std::fs::write(tmp("junk.h5"), b"junk").unwrap();
    assert!(Shapes3dH5::open(tmp("junk.h5")).err().unwrap().to_string().contains("not a readable HDF5 file"));
    assert!(Shapes3dH5::open(tmp("none.h5")).is_err());
}
